#pragma once
// The model `moe run` runs when no --model is given. Its files are compiled into the binary
// (models/ds-moe-tiny/, trained by tools/train/train.py), and written once to a cache folder
// the loader can map.
#include <filesystem>
#include <string>

namespace moe::model {

// What the default model is, in one sentence, for the run's output and the README.
std::string default_model_description();

// A folder holding the default model's files: $MOE_CACHE_DIR, else $XDG_CACHE_HOME/moe, else
// ~/.cache/moe, else the temporary folder; one subfolder per content hash, written atomically.
std::filesystem::path default_model_dir();

}  // namespace moe::model
