; Inno Setup 6 script: the Windows installer of RapidQA, from the PyInstaller folder.
; Built on Windows by packaging\windows\build_windows.ps1, which passes:
;   /DAppVersion=0.1.0  /DSourceDir=<repo>\build\pyinstaller\dist\rapidqa
;   /DIconFile=<repo>\build\icons\rapidqa.ico  /DOutputDir=<repo>\dist
; The CPU build is ~1.2 GB unpacked, ~450 MB compressed; a CUDA build is several GB,
; past what one setup.exe can hold: DiskSpanning writes setup.exe plus
; setup-1.bin, setup-2.bin, ... slices, which must be shipped together.

#ifndef AppVersion
  #error Pass /DAppVersion=X.Y.Z (build_windows.ps1 does)
#endif
#ifndef SourceDir
  #error Pass /DSourceDir=<the PyInstaller output folder> (build_windows.ps1 does)
#endif

[Setup]
AppId={{6F3B7C1E-5D2A-4E8B-9C41-2A7D0E9F4B13}
AppName=RapidQA
AppVersion={#AppVersion}
AppVerName=RapidQA {#AppVersion}
AppPublisher=RapidQA contributors
DefaultDirName={autopf}\RapidQA
DefaultGroupName=RapidQA
DisableProgramGroupPage=yes
; Per-user install without admin rights is offered; per-machine needs elevation.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
LicenseFile={#SourceDir}\LICENSE.txt
#ifdef IconFile
SetupIconFile={#IconFile}
#endif
UninstallDisplayIcon={app}\RapidQA.exe
OutputDir={#OutputDir}
OutputBaseFilename=rapidqa-{#AppVersion}-windows-x64-setup
Compression=lzma2/max
SolidCompression=yes
LZMAUseSeparateProcess=yes
; Setup.exe alone cannot exceed ~2 GB: big builds are split into .bin slices.
DiskSpanning=yes
DiskSliceSize=max
WizardStyle=modern
ChangesAssociations=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\RapidQA"; Filename: "{app}\RapidQA.exe"
Name: "{autodesktop}\RapidQA"; Filename: "{app}\RapidQA.exe"; Tasks: desktopicon

[Registry]
; "Open with > RapidQA" for PDFs (does not take over the default PDF viewer).
Root: HKA; Subkey: "Software\Classes\Applications\RapidQA.exe\shell\open\command"; ValueType: string; ValueData: """{app}\RapidQA.exe"" gui ""%1"""; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Applications\RapidQA.exe\SupportedTypes"; ValueType: string; ValueName: ".pdf"; ValueData: ""

[Run]
Filename: "{app}\RapidQA.exe"; Description: "{cm:LaunchProgram,RapidQA}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only what the app writes inside its own folder; the library (%LOCALAPPDATA%\RapidQA),
; settings and the model cache are the user's and stay.
Type: filesandordirs; Name: "{app}\_internal\__pycache__"
