#!/bin/sh
# Makes the secrets docker-compose.yml mounts, in DIR (default: the
# secrets directory beside this script):
#
#   audit_key          32 random bytes, base64: keys the audit log's hash chain
#   kek                32 random bytes, base64: encrypts the token signing keys
#   postgres_password  the database password, 48 hex digits
#   pgpass             the same password as a libpq password file, for PGPASSFILE
#
# A file that exists is kept: a new audit key would break the audit
# chain's verification, a new KEK would lose the signing keys, and a new
# password would no longer match the database's volume. Delete the
# directory and the volume (docker compose down -v) to start over.
set -eu

dir=${1:-$(dirname "$0")/secrets}
mkdir -p "$dir"
chmod 700 "$dir"

random_bytes() { head -c "$1" /dev/urandom; }

# write NAME: writes the file from stdin unless it exists. The containers
# run as other users than the file's owner (nonroot, postgres) and compose
# mounts file secrets as they are, so the file is readable by all; the
# directory (0700) keeps other users of this machine out.
write() {
	if [ -e "$dir/$1" ]; then
		cat >/dev/null
		echo "kept    $dir/$1"
		return
	fi
	(umask 022 && cat >"$dir/$1.tmp")
	mv "$dir/$1.tmp" "$dir/$1"
	echo "created $dir/$1"
}

random_bytes 32 | base64 | write audit_key
random_bytes 32 | base64 | write kek
random_bytes 24 | od -An -tx1 | tr -d ' \n' | write postgres_password
# host:port:database:user:password, the values of the store URLs in
# docker-compose.yml.
printf 'postgres:5432:mcpauthz:mcpauthz:%s\n' "$(cat "$dir/postgres_password")" | write pgpass
