// apps/rme: `rme train|train-router|finetune ...` — run rme-train (the libtorch binary beside
// rme) with the same arguments.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "commands.h"
#include "common.h"

namespace rme::cli {

namespace {

void add_forwarding(CLI::App& root, std::function<int()>& run, const std::string& name,
                    const std::string& help) {
  auto* app = root.add_subcommand(name, help);
  app->prefix_command();  // everything after `train` goes to rme-train untouched
  app->set_help_flag();   // so `rme train --help` reaches rme-train's own help
  app->callback([app, &run] {
    run = [app]() -> int {
      std::error_code ec;
      auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
      const std::string exe = (self.parent_path() / "rme-train").string();
      if (ec || access(exe.c_str(), X_OK) != 0)
        return fail(not_found(
            "`rme " + app->get_name() + "` runs rme-train, which is not installed next to rme (" +
            exe +
            "): training needs libtorch — apt-get install libtorch-dev libopenblas0-pthread, then "
            "configure with -DRME_WITH_TORCH=ON (the default)"));
      std::vector<std::string> args = {exe, app->get_name()};
      for (const auto& a : app->remaining()) args.push_back(a);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(exe.c_str(), argv.data());
      return fail(io_error(exe + ": cannot execute: " + std::strerror(errno)));
    };
  });
}

}  // namespace

void add_train_command(CLI::App& root, std::function<int()>& run) {
  add_forwarding(root, run, "train",
                 "Train a dense model with libtorch (runs rme-train; see `rme train --help`)");
  add_forwarding(root, run, "train-router",
                 "Distill the pre-gating router of an MoE from its dense parent (libtorch)");
  add_forwarding(root, run, "finetune",
                 "Fine-tune an MoE's experts with the router frozen, in rounds (libtorch)");
}

}  // namespace rme::cli
