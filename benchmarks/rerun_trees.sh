# Sourced by the rerun_*_twice.sh scripts (run from the project root): the copies of the project they rerun in.

# new_tree DIR: a project copy at DIR with the project's _config.yml and a link to its src/; results start empty.
new_tree() {
  mkdir -p "$1"; [ -e "$1/src" ] || ln -s "$PWD/src" "$1/src"; cp _config.yml "$1/"
}

# results_files TREE: TREE's result files that come back from the GPU (weights, checkpoints, backbone copies and
# per-word tables left out), one path per line; run it from TREE's parent folder.
results_files() {
  find "$1/results" -type f ! -name '*.safetensors' ! -path '*checkpoint*' ! -path '*/backbone/*' \
      ! -name 'word_saliency.csv'
}
