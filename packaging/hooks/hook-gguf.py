"""PyInstaller hook for gguf: transformers checks its version through its metadata
before it reads a ``.gguf`` file (the default model ships as one)."""

from PyInstaller.utils.hooks import collect_submodules, copy_metadata

hiddenimports = collect_submodules("gguf", filter=lambda name: not name.startswith("gguf.scripts"))
datas = copy_metadata("gguf")
