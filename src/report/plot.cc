// report: CSV writing and gnuplot invocation.
#include "report/plot.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/file.h"

namespace rme {

Status write_csv(const std::string& path, const Table& t) {
  std::ostringstream s;
  for (size_t i = 0; i < t.columns.size(); ++i) s << (i ? "," : "") << t.columns[i];
  s << "\n";
  s.precision(8);
  for (const auto& r : t.rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (i) s << ",";
      if (!std::isnan(r[i])) s << r[i];
    }
    s << "\n";
  }
  return write_file_atomic(path, s.str());
}

namespace {

// gnuplot single-quoted strings escape a quote by doubling it.
std::string q(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out;
}

Status run_gnuplot(const std::string& script_text, const std::string& png) {
  const std::string script = png + ".gp";
  RME_RETURN_IF_ERROR(write_file_atomic(script, script_text));
  const std::string cmd =
      "gnuplot '" + script + "' 2>/dev/null && mv '" + png + ".tmp' '" + png + "'";
  int rc = std::system(cmd.c_str());
  std::remove(script.c_str());
  if (rc != 0) return io_error("gnuplot failed to render " + png);
  return Status::Ok();
}

}  // namespace

Status plot_heatmap_png(const std::vector<std::vector<double>>& m, const std::string& title,
                        const std::string& xlabel, const std::string& ylabel,
                        const std::string& png) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    return unsupported("gnuplot is not installed");
  std::ostringstream g;
  g << "set terminal pngcairo size 700,600 noenhanced\nset output '" << png << ".tmp'\n"
    << "set title '" << q(title) << "'\nset xlabel '" << q(xlabel) << "'\nset ylabel '" << q(ylabel)
    << "'\nset palette rgbformulae 30,31,32\nset yrange [] reverse\n"
    << "plot '-' matrix with image notitle\n";
  for (const auto& row : m) {
    for (size_t j = 0; j < row.size(); ++j) g << (j ? " " : "") << row[j];
    g << "\n";
  }
  g << "e\n";
  return run_gnuplot(g.str(), png);
}

Status plot_png(const std::string& csv, const Table& t, const PlotSpec& spec,
                const std::string& png) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    return unsupported("gnuplot is not installed; wrote " + csv + " only");
  std::ostringstream g;
  g << "set terminal pngcairo size 1000,600 noenhanced\n"
    << "set output '" << png << ".tmp'\n"
    << "set datafile separator ','\n"
    << "set key outside right\nset grid\n"
    << "set title '" << q(spec.title) << "'\nset xlabel '" << q(spec.xlabel) << "'\nset ylabel '"
    << q(spec.ylabel) << "'\n";
  if (spec.log_x) g << "set logscale x\n";
  if (spec.log_y) g << "set logscale y\n";
  g << "plot ";
  for (size_t i = 0; i < spec.y_columns.size(); ++i) {
    int c = spec.y_columns[i];
    g << (i ? ", " : "") << "'" << csv << "' using " << spec.x_column + 1 << ":" << c + 1
      << " skip 1 with lines lw 2 title '" << q(t.columns[c]) << "'";
  }
  g << "\n";
  return run_gnuplot(g.str(), png);
}

}  // namespace rme
