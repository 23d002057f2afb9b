"""PyInstaller hook for ``fitz``, PyMuPDF's legacy import name (a shim over ``pymupdf``)."""

hiddenimports = ["pymupdf"]
