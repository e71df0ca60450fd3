#!/usr/bin/env bash
# Installs the Debian packages danemilter's tests and demo use. Idempotent.
# Needs root (uses sudo when not root). Go itself must already be installed.
set -euo pipefail
pkgs=(
  openssl       # the independent S/MIME reader: openssl cms -decrypt
  gnupg         # the independent OpenPGP reader
  postfix       # the real MTA of the integration tests
  unbound       # the validating resolver
  nsd           # the authoritative server
  ldnsutils     # ldns-keygen, ldns-signzone, ldns-key2ds: sign the test zones
  swaks         # sends test mail
  miltertest    # milter protocol conformance scripts
  dnsutils      # dig, for diagnostics
  ca-certificates
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Postfix must not ask questions nor configure a system mail service.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The packages may start system instances; the tests use their own on other
# ports, but stop the system ones so nothing listens on :25/:53 by accident.
for s in unbound nsd postfix; do
  $SUDO systemctl stop "$s" >/dev/null 2>&1 || $SUDO service "$s" stop >/dev/null 2>&1 || true
done
echo "setup.sh: installed ${missing[*]}"
