"""The app's persisted settings (`Settings`, kept in a `QSettings`) and the dialog that
edits them. A missing or corrupt value falls back to its default: never a crash."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui import theme
from core.config import (
    DEFAULT_DRAFTER,
    DEFAULT_MODEL,
    DEFAULT_TARGET,
    MODES,
    OFFLINE_MODEL_NAMES,
    PRECISIONS,
    SAME_AS_TARGET,
    TINY_MODEL,
    DecodeConfig,
    IndexConfig,
    Mode,
    ModelConfig,
    default_drafter,
)

DEVICES = ("auto", "cpu", "cuda")
PRECISION_LABELS = (
    ("Automatic", "auto"),
    ("4-bit weights (int4)", "int4"),
    ("8-bit weights (int8)", "int8"),
    ("bfloat16", "bfloat16"),
    ("float16", "float16"),
    ("float32 (exact, slowest)", "float32"),
)
ETA_RANGE = (0.0, 50.0)
GAMMA_RANGE = (1, 16)
TEMPERATURE_RANGE = (0.0, 2.0)
MAX_NEW_TOKENS_RANGE = (1, 4096)
BUDGET_RANGE = (0, 262_144)  # 0 = automatic (docs/architecture.md, "The retrieval budget")
CHUNK_RANGE = (128, 2048)
CHUNK_STEP = 64


@dataclass(frozen=True)
class Settings:
    """What the user chose in the settings dialog (and a few view preferences)."""

    target: str = DEFAULT_TARGET
    drafter: str = DEFAULT_DRAFTER
    device: str = "auto"  # one of DEVICES
    precision: str = "auto"  # one of PRECISIONS (core/models/precision.py)
    mode: Mode = DecodeConfig.mode  # "sd"; why: core/config.py
    eta: float = DecodeConfig.eta
    gamma: int = 6
    temperature: float = 0.0
    max_new_tokens: int = 256
    budget: int = 0  # drafter retrieval budget in tokens; 0 = automatic
    chunk_tokens: int = 512
    show_rejected: bool = True  # rejected drafts shown struck through in the answer

    @classmethod
    def load(cls, store: QSettings) -> Settings:
        """Each value from `store`, or its default when missing, of the wrong type or
        out of range."""
        return _upgraded(_merged(lambda name: store.value(_KEYS[name]), cls()))

    def save(self, store: QSettings) -> None:
        for name, value in asdict(self).items():
            store.setValue(_KEYS[name], value)
        store.sync()

    def summary(self) -> dict[str, Any]:
        """Plain values (JSON-friendly) to keep with an answer in the history."""
        return asdict(self)

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], base: Settings) -> Settings:
        """The settings of a `summary()`, with `base`'s value for any missing or invalid."""
        return _merged(summary.get, base)

    def describe(self) -> str:
        """The next answer's settings in one line, e.g. "rapid · η 5 · γ 6 · greedy"."""
        parts: list[str] = [self.mode]
        if self.mode == "rapid":
            parts.append(f"η {self.eta:g}")
        if self.mode in ("sd", "rapid"):
            parts.append(f"γ {self.gamma}")
        parts.append("greedy" if self.temperature == 0 else f"T {self.temperature:g}")
        parts.append(f"≤ {self.max_new_tokens} tokens")
        return " · ".join(parts)

    def model_config(self) -> ModelConfig:
        device: Any = self.device
        return ModelConfig(
            target=self.target, drafter=self.drafter, device=device, precision=self.precision
        )

    def decode_config(self) -> DecodeConfig:
        return DecodeConfig(
            mode=self.mode,
            gamma=self.gamma,
            eta=self.eta,
            temperature=self.temperature,
            max_new_tokens=self.max_new_tokens,
            budget=self.budget or None,
        )

    def index_config(self, library: Path | None = None) -> IndexConfig:
        overlap = IndexConfig().chunk_overlap
        if self.chunk_tokens <= overlap:  # keep 0 <= overlap < chunk size
            overlap = self.chunk_tokens // 8
        return IndexConfig(
            chunk_tokens=self.chunk_tokens, chunk_overlap=overlap, library=library,
            read_in_child=True,  # PyMuPDF in this process would stall the window
        )  # fmt: skip

    def models_changed(self, other: Settings) -> bool:
        """True when the models to load differ (a reload is needed)."""
        mine = (self.target, self.drafter, self.device, self.precision)
        return mine != (other.target, other.drafter, other.device, other.precision)

    def chunking_changed(self, other: Settings) -> bool:
        """True when documents are cut differently (the library must be re-indexed)."""
        return self.chunk_tokens != other.chunk_tokens


_KEYS = {
    "target": "models/target",
    "drafter": "models/drafter",
    "device": "models/device",
    "precision": "models/precision",
    "mode": "decoding/mode",
    "eta": "decoding/eta",
    "gamma": "decoding/gamma",
    "temperature": "decoding/temperature",
    "max_new_tokens": "decoding/max_new_tokens",
    "budget": "retrieval/budget",
    "chunk_tokens": "retrieval/chunk_tokens",
    "show_rejected": "view/show_rejected",
}


def _within(low: float, high: float) -> Callable[[Any], bool]:
    return lambda value: low <= value <= high


def _model_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and "\n" not in value


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "target": _model_name,
    "drafter": _model_name,
    "device": lambda value: value in DEVICES,
    "precision": lambda value: value in PRECISIONS,
    "mode": lambda value: value in MODES,
    "eta": _within(*ETA_RANGE),
    "gamma": _within(*GAMMA_RANGE),
    "temperature": _within(*TEMPERATURE_RANGE),
    "max_new_tokens": _within(*MAX_NEW_TOKENS_RANGE),
    "budget": _within(*BUDGET_RANGE),
    "chunk_tokens": _within(*CHUNK_RANGE),
    "show_rejected": lambda value: isinstance(value, bool),
}


def _upgraded(settings: Settings) -> Settings:
    """Settings saved by RapidQA 0.1, where "default" meant the bundled SmolLM2-135M:
    its untouched defaults (target "default", drafter "same") become today's default
    pair; a drafter "default" stays SmolLM2 (now by its short name)."""
    target, drafter = settings.target, settings.drafter
    if target == DEFAULT_MODEL:
        target = DEFAULT_TARGET
        drafter = DEFAULT_DRAFTER if drafter == SAME_AS_TARGET else drafter
    if drafter == DEFAULT_MODEL:
        drafter = TINY_MODEL
    return replace(settings, target=target, drafter=drafter)


def _merged(get: Callable[[str], Any], base: Settings) -> Settings:
    """`base` with each field replaced by `get(name)` where that is a valid value."""
    values: dict[str, Any] = {}
    for f in fields(Settings):
        fallback = getattr(base, f.name)
        try:
            value = _coerce(get(f.name), fallback)
        except Exception:  # a corrupt file may hold anything
            value = None
        values[f.name] = value if value is not None and _CHECKS[f.name](value) else fallback
    return Settings(**values)


def _coerce(raw: Any, default: Any) -> Any:
    """`raw` as the type of `default` (INI files hold strings), or None if it is not
    one. Bools and numbers are not mixed up: True is no gamma, 6 is no flag."""
    if raw is None:
        return None
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        return {"true": True, "1": True, "false": False, "0": False}.get(text)
    if isinstance(raw, bool) or isinstance(raw, (list, dict, tuple)):
        return None
    if isinstance(default, int):
        if isinstance(raw, float):
            return int(raw) if raw.is_integer() else None
        return int(str(raw).strip())  # ValueError -> default
    if isinstance(default, float):
        value = float(str(raw).strip()) if not isinstance(raw, (int, float)) else float(raw)
        return value if math.isfinite(value) else None
    return raw.strip() if isinstance(raw, str) else None


def looks_like_path(text: str) -> bool:
    """A local folder or file rather than a hub id ("org/name") or "default": a .gguf
    name, an absolute, home or relative path, a backslash, or more than one "/"."""
    text = text.strip()
    if text.lower().endswith(".gguf") or "\\" in text or text.count("/") > 1:
        return True
    return text.startswith(("/", "~", ".")) or (len(text) > 1 and text[1] == ":")


def model_problem(text: str) -> str:
    """Why `text` cannot name a model, for the line under the field; "" if it can."""
    text = text.strip()
    if not text:
        return "Enter a model: a bundled one, a hub id, a folder or a .gguf file."
    if looks_like_path(text) and not Path(text).expanduser().exists():
        return "Nothing at this path. Choose a model folder or .gguf file, or type a hub id."
    return ""


MODE_TEXTS: dict[str, tuple[str, str]] = {  # (name, one line: what runs)
    "target": ("Target only (baseline)", "The target reads the whole document, one token a step."),
    "rag": ("RAG", "The target reads only the retrieved passages."),
    "sd": (
        "Speculative decoding",
        "The drafter proposes, the target checks: the same answer as Target only, faster.",
    ),
    "rapid": (
        "RAPID",
        "Speculative decoding that leans the answer towards the retrieved passages (eta).",
    ),
}
SAME_LABEL = "Same as target (self-speculation)"
_ROLE_NOTES = {  # what each bundled model is for, in each role
    "target": {DEFAULT_TARGET: "default", DEFAULT_DRAFTER: "faster, less exact",
               TINY_MODEL: "tiny, for little memory"},
    "drafter": {DEFAULT_DRAFTER: "default", DEFAULT_TARGET: "upward speculation",
                TINY_MODEL: "tiny, its own vocabulary"},
}  # fmt: skip


def bundled_label(name: str, role: str = "target") -> str:
    """The settings list's label of a bundled (offline) model."""
    return f"{OFFLINE_MODEL_NAMES[name]} (bundled, {_ROLE_NOTES[role][name]})"


def model_presets(role: str) -> list[tuple[str, str]]:
    """(label, value) of each preset for the target or the drafter, the default first."""
    order = [DEFAULT_TARGET, DEFAULT_DRAFTER, TINY_MODEL]
    if role == "drafter":
        order = [DEFAULT_DRAFTER, DEFAULT_TARGET, TINY_MODEL]
    presets = [(bundled_label(name, role), name) for name in order]
    if role == "drafter":
        presets.insert(1, (SAME_LABEL, SAME_AS_TARGET))
    return presets


class ModelField(QWidget):
    """An editable model choice: the listed presets, or a typed hub id, a folder or a
    .gguf file (with buttons to browse); an error line under it when it cannot be."""

    changed = Signal()

    def __init__(self, presets: Sequence[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setEditable(True)
        self.combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.combo.setMinimumContentsLength(16)
        for label, value in presets:
            self.combo.addItem(label, value)
        edit = self.combo.lineEdit()
        assert edit is not None  # an editable combo has one
        edit.setPlaceholderText("bundled model, hub id, model folder or .gguf file")
        self.combo.currentTextChanged.connect(self._changed)
        self.folder_button = QPushButton("Folder…")
        self.folder_button.clicked.connect(lambda: self._picked(self.pick_folder()))
        self.gguf_button = QPushButton("GGUF file…")
        self.gguf_button.clicked.connect(lambda: self._picked(self.pick_gguf()))
        self.error = QLabel()
        self.error.setObjectName("error")
        self.error.setStyleSheet(f"color: {theme.VERMILION};")
        _wrapped(self.error)
        self.error.hide()
        # Overridable seams, so tests never open a file dialog.
        self.pick_folder: Callable[[], str] = lambda: QFileDialog.getExistingDirectory(
            self, "Choose a model folder"
        )
        self.pick_gguf: Callable[[], str] = lambda: QFileDialog.getOpenFileName(
            self, "Choose a GGUF model", "", "GGUF models (*.gguf)"
        )[0]
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(self.folder_button)
        row.addWidget(self.gguf_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(row)
        layout.addWidget(self.error)

    def value(self) -> str:
        text = self.combo.currentText().strip()
        index = self.combo.findText(text, Qt.MatchFlag.MatchExactly)
        return str(self.combo.itemData(index)) if index >= 0 else text

    def set_value(self, value: str) -> None:
        index = self.combo.findData(value)
        if index >= 0:
            self.combo.setCurrentIndex(index)
        self.combo.setEditText(self.combo.itemText(index) if index >= 0 else value)
        self._changed()

    def problem(self) -> str:
        return model_problem(self.value())

    def _picked(self, path: str) -> None:
        if path:
            self.set_value(path)

    def _changed(self) -> None:
        problem = self.problem()
        self.error.setText(problem)
        self.error.setVisible(bool(problem))
        self.changed.emit()


def _wrapped(label: QLabel, lines: int = 2) -> QLabel:
    """Word-wrapped with room for `lines` lines (a form does not grow for wrapping)."""
    label.setWordWrap(True)
    label.setMinimumHeight(label.fontMetrics().lineSpacing() * lines + 2)
    return label


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("color: #5F6670;")
    return _wrapped(label)


class SettingsDialog(QDialog):
    """Models, decoding, retrieval and display settings; `settings()` is the result."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(600)
        self._initial = settings

        self.target = ModelField(model_presets("target"))
        self.drafter = ModelField(model_presets("drafter"))
        self.device = QComboBox()
        for label, value in (("Automatic", "auto"), ("CPU", "cpu"), ("CUDA GPU", "cuda")):
            self.device.addItem(label, value)
        self.device.setToolTip("Automatic uses a CUDA GPU when there is one, else the CPU.")
        self.precision = QComboBox()
        for label, value in PRECISION_LABELS:
            self.precision.addItem(label, value)
        self.precision.setToolTip(
            "How the weights are stored. Automatic: 4-bit on a CPU for the bundled models "
            "(about 4x faster than 32-bit, a third of the memory), bfloat16 on a GPU. "
            "4-bit and 8-bit run on the CPU only."
        )
        models = QFormLayout()
        models.addRow("Target model:", self.target)
        models.addRow("Drafter model:", self.drafter)
        models.addRow("Device:", self.device)
        models.addRow("Precision:", self.precision)

        self.mode = QComboBox()
        for mode in MODES:
            self.mode.addItem(MODE_TEXTS[mode][0], mode)
        self.mode_note = _note("")
        self.eta = QDoubleSpinBox()
        self.eta.setRange(*ETA_RANGE)
        self.eta.setSingleStep(0.5)
        self.eta.setDecimals(1)
        self.eta.setToolTip(
            "How strongly RAPID leans towards the retrieved passages (paper: 5-20)."
        )
        self.gamma = QSpinBox()
        self.gamma.setRange(*GAMMA_RANGE)
        self.gamma.setSuffix(" tokens")
        self.gamma.setToolTip("The most tokens the drafter proposes per round.")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(*TEMPERATURE_RANGE)
        self.temperature.setSingleStep(0.1)
        self.temperature.setDecimals(2)
        self.temperature.setSpecialValueText("0 (greedy)")
        self.max_new_tokens = QSpinBox()
        self.max_new_tokens.setRange(*MAX_NEW_TOKENS_RANGE)
        decoding = QFormLayout()
        decoding.addRow("Mode:", self.mode)
        decoding.addRow("", self.mode_note)
        decoding.addRow("RAPID strength (eta):", self.eta)
        decoding.addRow("Draft tokens per round:", self.gamma)
        decoding.addRow("Temperature:", self.temperature)
        decoding.addRow("Longest answer:", self.max_new_tokens)

        self.budget = QSpinBox()
        self.budget.setRange(*BUDGET_RANGE)
        self.budget.setSingleStep(256)
        self.budget.setSuffix(" tokens")
        self.budget.setSpecialValueText("Automatic")
        self.budget.setToolTip("How much retrieved text the drafter reads; Automatic grows "
                               "with the document (up to 4,096 tokens).")  # fmt: skip
        self.chunk_tokens = QSpinBox()
        self.chunk_tokens.setRange(*CHUNK_RANGE)
        self.chunk_tokens.setSingleStep(CHUNK_STEP)
        self.chunk_tokens.setSuffix(" tokens")
        self.chunk_note = _note("")
        retrieval = QFormLayout()
        retrieval.addRow("Retrieval budget:", self.budget)
        retrieval.addRow("Passage size:", self.chunk_tokens)
        retrieval.addRow("", self.chunk_note)

        self.show_rejected = QCheckBox("Show rejected drafts (struck through) in the answer")

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        defaults = self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        defaults.clicked.connect(lambda: self.set_settings(Settings()))

        layout = QVBoxLayout(self)
        for title, form in (("Models", models), ("Decoding", decoding), ("Retrieval", retrieval)):
            group = QGroupBox(title)
            group.setLayout(form)
            layout.addWidget(group)
        layout.addWidget(self.show_rejected)
        layout.addWidget(self.buttons)

        self.target.changed.connect(self._target_changed)
        self.drafter.changed.connect(self._validate)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.chunk_tokens.valueChanged.connect(self._chunk_changed)
        self.set_settings(settings)

    def _target_changed(self) -> None:
        """A drafter left at its automatic choice follows the target: the default
        drafter for the default target, the target itself for any other (a drafter
        must share the target's vocabulary)."""
        if self.drafter.value() in (DEFAULT_DRAFTER, SAME_AS_TARGET):
            self.drafter.set_value(default_drafter(self.target.value()))
        self._validate()

    def set_settings(self, s: Settings) -> None:
        """Fill every field from `s`."""
        self.target.set_value(s.target)
        self.drafter.set_value(s.drafter)  # after the target: this choice stands
        self.device.setCurrentIndex(max(0, self.device.findData(s.device)))
        self.precision.setCurrentIndex(max(0, self.precision.findData(s.precision)))
        self.mode.setCurrentIndex(max(0, self.mode.findData(s.mode)))
        self.eta.setValue(s.eta)
        self.gamma.setValue(s.gamma)
        self.temperature.setValue(s.temperature)
        self.max_new_tokens.setValue(s.max_new_tokens)
        self.budget.setValue(s.budget)
        self.chunk_tokens.setValue(s.chunk_tokens)
        self.show_rejected.setChecked(s.show_rejected)
        self._mode_changed()
        self._chunk_changed()
        self._validate()

    def settings(self) -> Settings:
        """The settings as edited (valid whenever OK is enabled)."""
        return Settings(
            target=self.target.value(),
            drafter=self.drafter.value(),
            device=str(self.device.currentData()),
            precision=str(self.precision.currentData()),
            mode=self.mode.currentData(),
            eta=round(self.eta.value(), 3),
            gamma=self.gamma.value(),
            temperature=round(self.temperature.value(), 3),
            max_new_tokens=self.max_new_tokens.value(),
            budget=self.budget.value(),
            chunk_tokens=self.chunk_tokens.value(),
            show_rejected=self.show_rejected.isChecked(),
        )

    def _mode_changed(self) -> None:
        mode = self.mode.currentData()
        self.mode_note.setText(MODE_TEXTS[mode][1])
        self.eta.setEnabled(mode == "rapid")
        self.gamma.setEnabled(mode in ("sd", "rapid"))
        self.budget.setEnabled(mode != "target")

    def _chunk_changed(self) -> None:
        changed = self.chunk_tokens.value() != self._initial.chunk_tokens
        self.chunk_note.setText(
            "The library is re-indexed when you press OK (this can take a while)."
            if changed
            else "Changing it re-indexes the library."
        )

    def _validate(self) -> None:
        self.ok_button.setEnabled(not self.target.problem() and not self.drafter.problem())
