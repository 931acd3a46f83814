// formats: .npy version 1.0, '<f4', C order.
#include "formats/npy.h"

#include <cstring>

#include "core/file.h"

namespace rme {

Status write_npy_f32(const std::string& path, const float* data,
                     const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict +=
        std::to_string(shape[i]) + (shape.size() == 1 ? "," : (i + 1 < shape.size() ? ", " : ""));
    n *= shape[i];
  }
  dict += "), }";
  // Header (magic 6 + version 2 + length 2 + dict) is padded with spaces to a multiple of 64,
  // ending in a newline.
  size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  const uint16_t len = static_cast<uint16_t>(dict.size());
  const char magic[10] = {'\x93',
                          'N',
                          'U',
                          'M',
                          'P',
                          'Y',
                          1,
                          0,
                          static_cast<char>(len & 0xff),
                          static_cast<char>(len >> 8)};
  std::string out(magic, sizeof(magic));
  out += dict;
  out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n) * 4);
  return write_file_atomic(path, out);
}

Result<std::vector<float>> read_npy_f32(const std::string& path, std::vector<int64_t>* shape) {
  RME_ASSIGN_OR_RETURN(std::string s, read_file(path));
  if (s.size() < 10 || s.compare(0, 6, "\x93NUMPY") != 0)
    return corrupt(path + ": not a .npy file");
  uint16_t len;
  std::memcpy(&len, s.data() + 8, 2);
  if (10u + len > s.size()) return corrupt(path + ": truncated .npy header");
  std::string dict = s.substr(10, len);
  if (dict.find("'<f4'") == std::string::npos) return unsupported(path + ": dtype is not <f4");
  size_t a = dict.find("'shape': ("), b = dict.find(')', a);
  if (a == std::string::npos || b == std::string::npos) return corrupt(path + ": no shape");
  std::vector<int64_t> sh;
  int64_t n = 1;
  for (size_t i = a + 10; i < b;) {
    size_t j = dict.find_first_of(",)", i);
    std::string num = dict.substr(i, j - i);
    if (num.find_first_not_of(' ') != std::string::npos) {
      sh.push_back(std::stoll(num));
      n *= sh.back();
    }
    i = j + 1;
  }
  if (10u + len + static_cast<size_t>(n) * 4 != s.size())
    return corrupt(path + ": data size mismatch");
  std::vector<float> out(static_cast<size_t>(n));
  std::memcpy(out.data(), s.data() + 10 + len, out.size() * 4);
  if (shape) *shape = sh;
  return out;
}

}  // namespace rme
