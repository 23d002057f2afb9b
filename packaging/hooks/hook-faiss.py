"""PyInstaller hook for faiss (faiss-cpu): the SWIG module, libfaiss and its metadata.

faiss picks its SWIG module at run time (``faiss.loader``: ``swigfaiss``, or an
``swigfaiss_avx2`` / ``_avx512`` build where the wheel has one), so the analysis
cannot see which; every variant present is collected. ``faiss.contrib`` (benchmarks,
GPU and torch helpers) is left out: RapidQA does not use it.
"""

from PyInstaller.utils.hooks import collect_dynamic_libs, collect_submodules, copy_metadata

hiddenimports = collect_submodules("faiss", filter=lambda n: not n.startswith("faiss.contrib"))
binaries = collect_dynamic_libs("faiss")
datas = copy_metadata("faiss-cpu")
excludedimports = ["faiss.contrib"]
