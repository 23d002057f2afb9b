"""PyInstaller hook for sentence-transformers.

A saved model names its modules by dotted class path in ``modules.json``
(``sentence_transformers.models.Transformer``, ``...Pooling``, ``...Normalize``)
and sentence-transformers imports them by name, so the analysis cannot see them:
every submodule is collected (pure Python, a few MB). Training and evaluation code
that needs packages the app does not ship (``datasets``, ``peft``, ...) fails to
import at collection time and is skipped with a warning, which is fine.
"""

from PyInstaller.utils.hooks import collect_submodules, copy_metadata

hiddenimports = collect_submodules("sentence_transformers", on_error="ignore")
datas = copy_metadata("sentence-transformers")
