@echo off
rem Install the pywats-client supervisor as a Windows service with NSSM
rem (https://nssm.cc, public domain). Alternative to pywats-client-service.xml (WinSW).
rem Run from an elevated prompt after adjusting the paths. See docs/operations.md.
setlocal

set SERVICE=pywats-client
set NSSM=C:\pywats-client\nssm.exe
set ROOT=C:\pywats-client
set PYTHON=%ROOT%\venv\Scripts\python.exe
set REGISTRY=%ROOT%\instances.toml

rem python.exe itself (not the pywats-client.exe launcher), so Ctrl+C reaches the supervisor.
rem NSSM joins the program's arguments with spaces and drops their quotes; the
rem tripled quotes around the registry path (NSSM's documented way to pass a
rem quote) keep a path with spaces in one piece. Check the result printed at the end.
"%NSSM%" install %SERVICE% "%PYTHON%" -m pywats_client supervise --registry """%REGISTRY%""" || exit /b 1
"%NSSM%" set %SERVICE% DisplayName "pywats-client"
"%NSSM%" set %SERVICE% Description "Uploads test results from this PC's stations to WATS"
"%NSSM%" set %SERVICE% AppDirectory "%ROOT%"
"%NSSM%" set %SERVICE% Start SERVICE_AUTO_START
rem One argument per variable; the quotes keep a path with spaces in one piece.
"%NSSM%" set %SERVICE% AppEnvironmentExtra "PYWATS_REGISTRY=%REGISTRY%" PYTHONUNBUFFERED=1

rem Stopping: NSSM sends Ctrl+C and by default waits only 1.5 s before it kills.
rem The supervisor needs [supervisor] stop_timeout + 5 s to stop its workers
rem gracefully, so wait up to 60 s, and skip the window/thread messages a
rem console program does not answer (AppStopMethodSkip 6).
"%NSSM%" set %SERVICE% AppStopMethodConsole 60000
"%NSSM%" set %SERVICE% AppStopMethodSkip 6
"%NSSM%" set %SERVICE% AppKillProcessTree 1

rem The supervisor restarts crashed or hung workers itself; NSSM restarts the supervisor.
"%NSSM%" set %SERVICE% AppExit Default Restart
"%NSSM%" set %SERVICE% AppRestartDelay 10000

rem The supervisor's console output (the stations' logs are in [supervisor] log_dir).
if not exist "%ROOT%\logs" mkdir "%ROOT%\logs"
"%NSSM%" set %SERVICE% AppStdout "%ROOT%\logs\service.log"
"%NSSM%" set %SERVICE% AppStderr "%ROOT%\logs\service.log"
"%NSSM%" set %SERVICE% AppRotateFiles 1
"%NSSM%" set %SERVICE% AppRotateOnline 1
"%NSSM%" set %SERVICE% AppRotateBytes 10485760

rem Run as a dedicated account with access to the result folders (recommended):
rem "%NSSM%" set %SERVICE% ObjectName .\pywats "password"

rem The API token goes into each station's config (api_token), in the folder
rem protected as docs/operations.md says ("Protect the folder"). Do NOT add
rem PYWATS_API_TOKEN to AppEnvironmentExtra: NSSM stores it in
rem HKLM\SYSTEM\CurrentControlSet\Services\%SERVICE%\Parameters, which every
rem user of this PC can read.

echo.
echo The arguments NSSM passes; the registry path must be one piece, inside "...":
"%NSSM%" get %SERVICE% AppParameters
echo.
echo Installed. Start it with:  "%NSSM%" start %SERVICE%
