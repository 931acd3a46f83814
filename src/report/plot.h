// report: CSV tables and PNG line plots (rendered by gnuplot, a Debian package).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace rme {

// A table with named columns; rows of numbers (NaN = missing, left blank in CSV).
struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<double>> rows;
};

Status write_csv(const std::string& path, const Table& t);

struct PlotSpec {
  std::string title, xlabel, ylabel;
  int x_column = 0;
  std::vector<int> y_columns;  // one line per column, titled by the column name
  bool log_x = false, log_y = false;
};

// Writes `png` from the CSV at `csv` (columns as in `t`). Returns kUnsupported if gnuplot is not
// installed; the CSV is the primary artefact.
Status plot_png(const std::string& csv, const Table& t, const PlotSpec& spec,
                const std::string& png);

// Writes `png`: matrix m (rows top to bottom) as a colour map.
Status plot_heatmap_png(const std::vector<std::vector<double>>& m, const std::string& title,
                        const std::string& xlabel, const std::string& ylabel,
                        const std::string& png);

}  // namespace rme
