"""PyInstaller hook for PyMuPDF: the MuPDF libraries, its SWIG modules and its licence.

``pymupdf/__init__.py`` imports ``mupdf`` and ``_extra`` by plain name after putting
its own folder on ``sys.path``-like lookups; they are listed explicitly. The
``mupdf-devel`` folder (headers and link libraries for building against MuPDF) is
not needed at run time. The dist-info (with ``COPYING``, the AGPL-3.0 text) is
collected so that the licence travels with the binary.
"""

from PyInstaller.utils.hooks import collect_dynamic_libs, copy_metadata

hiddenimports = [
    "pymupdf.mupdf",
    "pymupdf.extra",
    "pymupdf._extra",
    "pymupdf._mupdf",
    "pymupdf.table",
    "pymupdf.utils",
]
binaries = [b for b in collect_dynamic_libs("pymupdf") if "mupdf-devel" not in b[0]]
datas = copy_metadata("pymupdf")
