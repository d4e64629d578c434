# The steps of scripts/bootstrap, as functions so that tests can run each one alone
# (tests/scripts/test_bootstrap.py). Sourced, never run; the caller is in the checkout.

say() { echo "bootstrap: $*" >&2; }

# The minor version (3.11) of a Python interpreter, empty when it does not run.
python_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

# The interpreter to make .venv with: $PYTHON, else python3.11, else python3; empty if none.
find_python() {
  local candidate
  for candidate in ${PYTHON:-python3.11 python3}; do
    if command -v "$candidate" >/dev/null 2>&1 && [ -n "$(python_version "$candidate")" ]; then
      echo "$candidate"
      return
    fi
  done
}

# Debian keeps `venv`'s pip bootstrap (ensurepip) in a package of its own, pythonX.Y-venv.
python_can_make_venvs() { "$1" -c 'import ensurepip, venv' >/dev/null 2>&1; }

# A virtualenv is usable when its interpreter runs and has pip. One made while ensurepip was
# missing has neither pip nor, on a rerun, any way to get it: `venv` keeps it as it is.
venv_works() { [ -x "$1/bin/python" ] && "$1/bin/python" -m pip --version >/dev/null 2>&1; }

# What to run as root when this user cannot install the packages $2... ($1 says why).
say_run_as_root() {
  local why=$1
  shift
  say "needs the Debian packages $*, and $why. As root, run"
  say "  apt-get update && apt-get install -y $*"
  say "then this command again."
}

# Install Debian packages as root, through sudo, or say exactly what to run when neither works.
apt_install() {
  local as_root=() log
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      say_run_as_root "this user is not root and has no sudo" "$@"
      return 1
    fi
    say "sudo may ask for your password, to install $*"
    # Asked first, so that a user sudo refuses (or one it cannot ask: no terminal) is told
    # what to run instead of being shown apt-get's output.
    if ! sudo true; then
      say_run_as_root "sudo does not let this user run it" "$@"
      return 1
    fi
    as_root=(sudo)
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "needs $* (Debian's names) and this is not a Debian-like system: install their equivalents, then run this again."
    return 1
  fi
  log=$(mktemp "${TMPDIR:-/tmp}/hookbus-apt.XXXXXX")
  if ! { "${as_root[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "$@"; } >"$log" 2>&1; then
    cat "$log" >&2
    say "installing $* with apt-get failed (output above)"
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

have_postgres_server() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1
}

# The Debian packages the profile needs that are missing: `run` needs a Java runtime and Maven
# (the local Kafka broker); `test` also PostgreSQL's server, unless HOOKBUS_TEST_PG_DSN names one,
# and Chromium with its WebDriver (the console's browser tests drive Debian's build: no other can
# be downloaded where the tests run).
missing_system_packages() {
  local profile=$1 python=$2 missing=()
  if [ -z "$python" ]; then
    missing+=(python3 python3-venv)
  elif ! python_can_make_venvs "$python"; then
    missing+=("python$(python_version "$python")-venv")
  fi
  command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  if [ "$profile" = test ] && [ -z "${HOOKBUS_TEST_PG_DSN:-}" ] && ! have_postgres_server; then
    missing+=(postgresql)
  fi
  if [ "$profile" = test ]; then
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  fi
  echo "${missing[*]}"
}

# .venv made with $1, or made again when it is broken.
ensure_venv() {
  local python=$1 version
  if [ -e .venv ] && ! venv_works .venv; then
    say ".venv has no working python or pip (made before ${python}'s venv support was installed?): recreating it"
    rm -rf .venv
  fi
  if [ ! -e .venv ]; then
    version=$(python_version "$python")
    say "creating .venv with $python ($version)"
    "$python" -m venv .venv
  fi
  venv_works .venv || { say "the new .venv has no working pip: see the output above"; return 1; }
}

# pip's output (the build backend's warnings included) goes to a log, shown only when it fails.
pip_install() {
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check "$@" >>.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    say "pip install $* failed (log: .venv/pip.log)"
    return 1
  fi
}

# hookbus into .venv, reinstalled only when the declared dependencies change. `run` gets the
# runtime (with uvloop); `test` the development tools and the example packages as well, and a
# `test` install serves `run` too.
install_python_packages() {
  local profile=$1 stamp=.venv/.hookbus-deps want have manifests examples example
  shopt -s nullglob
  manifests=(pyproject.toml examples/*/pyproject.toml)
  examples=("${manifests[@]:1}")
  want=$(cat "${manifests[@]}" | sha256sum | cut -d' ' -f1)
  have=$(cat "$stamp" 2>/dev/null || true)
  if [ "$have" = "$want test" ] || [ "$have" = "$want $profile" ]; then
    return
  fi
  : >.venv/pip.log
  say "upgrading pip in .venv"
  pip_install --upgrade pip
  if [ "$profile" = test ]; then
    say "installing hookbus and its development tools into .venv (about a minute the first time)"
    pip_install -e '.[dev]'
    for example in "${examples[@]}"; do
      say "installing the example package $(dirname "$example")"
      pip_install -e "$(dirname "$example")"
    done
  else
    say "installing hookbus and its dependencies into .venv (under a minute the first time)"
    pip_install -e '.[fast]'
  fi
  echo "$want $profile" >"$stamp"
}
