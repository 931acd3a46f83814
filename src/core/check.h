// core: CHECK for programmer bugs (always on). Expected failures use Status instead.
#pragma once

#include <sstream>

namespace rme::detail {

// Collects a message and aborts in its destructor; used only through RME_CHECK.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* expr);
  [[noreturn]] ~CheckFailure();
  template <typename T>
  CheckFailure& operator<<(const T& v) {
    stream_ << v;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

}  // namespace rme::detail

#define RME_CHECK(cond) \
  if (cond) {           \
  } else                \
    ::rme::detail::CheckFailure(__FILE__, __LINE__, #cond)

#ifdef NDEBUG
#define RME_DCHECK(cond) \
  if (true) {            \
  } else                 \
    ::rme::detail::CheckFailure(__FILE__, __LINE__, #cond)
#else
#define RME_DCHECK(cond) RME_CHECK(cond)
#endif
