# Sourced by the scripts that run the project's Python (set $repo first): sets $python to
# .venv/bin/python when its install finished (scripts/bootstrap writes .venv/.requirements.sha256
# last, so an interrupted first install has no stamp). Otherwise it
# answers --help with the script's purpose and what to run, and anything else with one line saying
# what to run: never a Python traceback from a missing or half-installed environment.
# Usage: source "$repo/scripts/lib/python-env.sh"; need_python "$@"
need_python() {
  python=$repo/.venv/bin/python
  if [ -x "$python" ] && [ -s "$repo/.venv/.requirements.sha256" ]; then return 0; fi
  local name arg
  name=scripts/$(basename "$0")
  for arg in "$@"; do
    case $arg in
      -h|--help)
        # The script's purpose: its header comment (line 2).
        echo "$name: $(sed -n '2s/^# *//p' "$0")"
        echo "Every option is listed by '$name --help' once the project's Python environment is" \
             "installed: run scripts/bootstrap first (once, a few minutes)."
        exit 0 ;;
    esac
  done
  echo "$name: the project's Python environment is not installed (or its install did not" \
       "finish): run scripts/bootstrap first" >&2
  exit 1
}
