// tests/util: running the rme binary (RME_BIN, defined for every test target) and capturing its
// exit code, stdout and stderr.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "core/file.h"
#include "util/tiny_model.h"

namespace rme::test {

struct CmdResult {
  int code;  // exit status; -1 when killed by a signal outside `sh`
  std::string out, err;
};

inline CmdResult run_rme(const std::string& args) {
  const std::string dir = temp_dir("cli_run");
  const std::string cmd = std::string(RME_BIN) + " " + args + " >" + dir + "/out 2>" + dir + "/err";
  int st = std::system(cmd.c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, read_file(dir + "/out").value(),
          read_file(dir + "/err").value()};
}

}  // namespace rme::test
