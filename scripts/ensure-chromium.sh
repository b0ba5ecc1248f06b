#!/usr/bin/env bash
# Best effort: the dashboard tests open the generated site in Debian's headless Chromium.
# Installs it when missing and we are root on a Debian-like machine; otherwise those tests skip
# with a clear reason. Never fails the build.
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the dashboard tests..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    >/dev/null 2>&1 || echo "could not install chromium; dashboard browser tests will skip" >&2
fi
exit 0
