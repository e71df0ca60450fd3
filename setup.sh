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
  python3-cryptography-vectors  # NIST PKITS S/MIME messages: smime TestVerifyPKITS
  postgresql    # the shared certificate store's backend: harvest tests start their own server
  # Shared libraries of Sendmail 8.17, which the tests run from its extracted
  # packages (see prepare_sendmail below), and unshare for its private
  # /etc/hosts and resolv.conf.
  libdb5.3 libldap-2.5-0 libnsl2 libsasl2-2 libssl3 procps util-linux
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

# Sendmail 8.17 for the integration tests, from Debian's packages but not
# installed: sendmail-bin conflicts with Postfix as the system MTA. The
# packages are extracted into .cache/sendmail; the binary is copied without
# its setgid bit, since the loader ignores LD_LIBRARY_PATH (which points at
# the extracted liblockfile and libwrap) for setgid programs. The tests run it
# under "unshare -m" with a private /etc/hosts and resolv.conf.
prepare_sendmail() {
  local dir
  dir="$(cd "$(dirname "$0")" && pwd)/.cache/sendmail"
  if [ -x "$dir/sendmail" ] && [ -f "$dir/root/usr/share/sendmail/cf/m4/cf.m4" ]; then
    return 0
  fi
  rm -rf "$dir" && mkdir -p "$dir/debs" "$dir/root"
  local debs=(sendmail-bin sendmail-cf sendmail-base liblockfile1 libwrap0 m4)
  if ! (cd "$dir/debs" && apt-get download -qq "${debs[@]}" 2>/dev/null); then
    $SUDO apt-get update -qq
    (cd "$dir/debs" && apt-get download -qq "${debs[@]}")
  fi
  for d in "$dir"/debs/*.deb; do dpkg -x "$d" "$dir/root"; done
  cp "$dir/root/usr/libexec/sendmail/sendmail" "$dir/sendmail"
  chmod 0755 "$dir/sendmail"
  echo "setup.sh: Sendmail extracted into $dir"
}

if [ ${#missing[@]} -eq 0 ]; then
  prepare_sendmail
  echo "setup.sh: all packages present"
  exit 0
fi
# Postfix must not ask questions nor configure a system mail service.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The packages may start system instances; the tests use their own on other
# ports, but stop the system ones so nothing listens on :25/:53 by accident.
for s in unbound nsd postfix; do
  $SUDO systemctl stop "$s" >/dev/null 2>&1 || $SUDO service "$s" stop >/dev/null 2>&1 || true
done
prepare_sendmail
echo "setup.sh: installed ${missing[*]}"
