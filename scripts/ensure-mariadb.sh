#!/usr/bin/env bash
# The SQL tests run the validation function's statements on a private MariaDB server (Debian's
# mariadb-server; the tests start their own instance on a socket, no service is enabled).
# Install it when it is missing and we may; otherwise say what the tests will do without it.
set -euo pipefail
if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing mariadb-server (for the SQL tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null
  exit 0
fi
echo "note: mariadb-server is not installed and cannot be installed here (not root):" \
     "the SQL tests will skip (and fail under CI=true). sudo apt-get install mariadb-server" >&2
