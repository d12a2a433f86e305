#!/usr/bin/env bash
# Install the checkers the unit tests run on files Python does not own: checkov (Terraform), in
# its own virtualenv .venv-checkov; OpenMetadata's ingestion library (its workflow configs), in
# .venv-openmetadata; and the Go binaries actionlint (GitHub workflows) and, on
# request, tofu (OpenTofu, `tofu fmt`), built from the Go module proxy into .tools/bin.
#
#   bash tools/install.sh                   # checkov, actionlint
#   DATAPLATFORM_TOFU=1 bash tools/install.sh   # also OpenTofu: a first build takes 15-45 min
#                                               # on 2 cores, so it is not part of every setup
#
# Idempotent and quick when done: checkov and openmetadata-ingestion are stamped with the hash of
# their constraints and this script; a Go binary is built only when missing or of another version (OpenTofu takes minutes).
# Without a Go toolchain (1.24+) the Go tools are left out with a message, and their tests skip
# saying so; CI installs Go first (.github/workflows/ci.yml).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
CHECKOV_VENV="$ROOT/.venv-checkov"
CHECKOV_CONSTRAINTS="$ROOT/constraints-checkov.txt"
CHECKOV_VERSION=3.3.30
OPENMETADATA_VENV="$ROOT/.venv-openmetadata"
OPENMETADATA_CONSTRAINTS="$ROOT/constraints-openmetadata.txt"
# The client of the compose OpenMetadata server's version (docker-compose.yml).
OPENMETADATA_VERSION=2.0.7.0
TOOLS="$ROOT/.tools/bin"
ACTIONLINT_VERSION=v1.7.12
TOFU_VERSION=v1.10.6

install_checkov() {
  local stamp="$CHECKOV_VENV/.dataplatform-install.sha256" sum
  sum=$(cat "$CHECKOV_CONSTRAINTS" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
  if [ -x "$CHECKOV_VENV/bin/checkov" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
    echo "    checkov is up to date ($CHECKOV_VENV)"
    return
  fi
  [ -x "$CHECKOV_VENV/bin/python" ] || "$PYTHON" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$CHECKOV_VENV/bin/pip" install -q --disable-pip-version-check -c "$CHECKOV_CONSTRAINTS" \
    "checkov==$CHECKOV_VERSION"
  "$CHECKOV_VENV/bin/checkov" --version >/dev/null
  echo "$sum" > "$stamp"
  echo "    installed checkov $CHECKOV_VERSION into $CHECKOV_VENV"
}

install_openmetadata() {
  local stamp="$OPENMETADATA_VENV/.dataplatform-install.sha256" sum
  sum=$(cat "$OPENMETADATA_CONSTRAINTS" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
  if [ -x "$OPENMETADATA_VENV/bin/metadata" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
    echo "    openmetadata-ingestion is up to date ($OPENMETADATA_VENV)"
    return
  fi
  [ -x "$OPENMETADATA_VENV/bin/python" ] || "$PYTHON" -m venv "$OPENMETADATA_VENV"
  "$OPENMETADATA_VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
  # The constraints keep dbt-core at 1.x: 2.x needs a parser whose build downloads from GitHub.
  "$OPENMETADATA_VENV/bin/pip" install -q --disable-pip-version-check \
    -c "$OPENMETADATA_CONSTRAINTS" "openmetadata-ingestion==$OPENMETADATA_VERSION"
  "$OPENMETADATA_VENV/bin/python" -W ignore -c \
    "import metadata.ingestion.api.parser, metadata.config.common" >/dev/null
  echo "$sum" > "$stamp"
  echo "    installed openmetadata-ingestion $OPENMETADATA_VERSION into $OPENMETADATA_VENV"
}

find_go() {
  if command -v go >/dev/null; then
    command -v go
  elif [ -x /usr/local/go/bin/go ]; then
    echo /usr/local/go/bin/go
  fi
}

# go_tool NAME VERSION BUILD...: run BUILD (which writes $TOOLS/NAME) unless NAME is there at VERSION.
go_tool() {
  local name="$1" version="$2"; shift 2
  local marker="$TOOLS/.$name.version"
  if [ -x "$TOOLS/$name" ] && [ "$(cat "$marker" 2>/dev/null)" = "$version" ]; then
    echo "    $name $version is installed ($TOOLS/$name)"
    return
  fi
  mkdir -p "$TOOLS"
  echo "    building $name $version from the Go module proxy"
  "$@"
  echo "$version" > "$marker"
}

build_actionlint() {
  GOBIN="$TOOLS" "$GO" install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
}

# `go install module@version` refuses OpenTofu: its go.mod has a replace directive (for its HCL
# fork). Building inside the module, where the directive applies, gives the same binary; the
# ldflag drops the "-dev" marker, as OpenTofu's release builds do.
build_tofu() {
  local dir
  dir=$("$GO" mod download -json "github.com/opentofu/opentofu@$TOFU_VERSION" \
    | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  (cd "$dir" && "$GO" build -trimpath -ldflags "-X github.com/opentofu/opentofu/version.dev=no" \
    -o "$TOOLS/tofu" ./cmd/tofu)
}

install_checkov
install_openmetadata
GO="$(find_go)"
if [ -z "$GO" ]; then
  echo "    no Go toolchain: actionlint and tofu are not installed (their tests skip); install Go 1.24+ and re-run" >&2
  exit 0
fi
go_tool actionlint "$ACTIONLINT_VERSION" build_actionlint
if [ "${DATAPLATFORM_TOFU:-0}" = 1 ]; then
  go_tool tofu "$TOFU_VERSION" build_tofu
else
  echo "    tofu: not built (DATAPLATFORM_TOFU=1 builds it; its fmt test skips until then)"
fi
