#!/bin/bash
# sign_keys.sh - key files and signing tables that must be refused, each with a message naming
# the file (and line): wrong mode, wrong owner, symlink, weak or mismatched key, bad rows.
# Uses no network.
top_srcdir=$(cd "$top_srcdir" && pwd)
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/lib/tap.sh"

keygen=$top_builddir/tools/mxmoat-keygen
signer=$top_builddir/tests/helpers/sign_message
dir=$(mktemp -d "${TMPDIR:-/tmp}/moat-signkeys.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1
owner=$(id -un)
[ "$(id -u)" = 0 ] && owner=nobody

"$keygen" -o rsa.key sel k.test >/dev/null
"$keygen" -a ed25519 -o ed.key sel2 k.test >/dev/null
openssl genrsa -out weak.key 1024 2>/dev/null && chmod 600 weak.key
chown "$owner" rsa.key ed.key weak.key

# try TABLE-CONTENT -> the loader's error (sign_message exits 3 on a config error)
try() {
	printf '%b' "$1" >table
	printf 'dkim_signing_table = %s/table\n' "$dir" >moat.conf
	"$signer" -c moat.conf </dev/null 2>&1 >/dev/null
}

out=$(printf 'From: a@k.test\n\nx\n' >msg; printf 'k.test sel rsa-sha256 rsa.key\n' >table;
	printf 'dkim_signing_table = %s/table\n' "$dir" >moat.conf; "$signer" -c moat.conf <msg >/dev/null; echo $?)
tap_is "a good key signs" "$out" 0

chmod 640 rsa.key
tap_like "group-readable key refused, file named" "$(try 'k.test sel rsa-sha256 rsa.key\n')" \
	"$dir/rsa.key: key file is readable or writable by its group \\(mode 0640\\); run chmod 600 on it"
chmod 604 rsa.key
tap_like "world-readable key refused" "$(try 'k.test sel rsa-sha256 rsa.key\n')" \
	"rsa.key: key file is readable or writable by others \\(mode 0604\\)"
chmod 600 rsa.key
if [ "$(id -u)" = 0 ]; then
	chown root rsa.key
	tap_like "key not owned by the daemon user refused" "$(try 'k.test sel rsa-sha256 rsa.key\n')" \
		"rsa.key: key file is owned by uid 0, not by the daemon user \\(uid $(id -u nobody)\\)"
	chown nobody rsa.key
else
	tap__result 0 "key owner check # SKIP needs root"
fi
ln -s rsa.key link.key
tap_like "symlinked key refused" "$(try 'k.test sel rsa-sha256 link.key\n')" "link.key: cannot open key file: it is a symbolic link"
tap_like "1024-bit RSA refused" "$(try 'k.test sel rsa-sha256 weak.key\n')" \
	"weak.key: RSA key of 1024 bits refused \\(2048 to 8192 bits; RFC 8301\\)"
tap_like "algorithm mismatch refused" "$(try 'k.test sel ed25519-sha256 rsa.key\n')" \
	"rsa.key: the signing table says ed25519-sha256 but this is not an Ed25519 key"
tap_like "missing key file" "$(try 'k.test sel rsa-sha256 none.key\n')" \
	"$dir/table:1: $dir/none.key: cannot open key file: No such file or directory"
tap_like "unknown algorithm: file:line" "$(try '# c\n\nk.test sel rsa-sha1 rsa.key\n')" \
	"$dir/table:3: unknown algorithm 'rsa-sha1' \\(rsa-sha256 or ed25519-sha256\\)"
tap_like "too few fields: file:line" "$(try 'k.test sel rsa-sha256\n')" \
	"$dir/table:1: expected PATTERN SELECTOR ALGORITHM KEYFILE \\[d=DOMAIN\\], got 3 fields"
tap_like "bad pattern" "$(try 'k..test sel rsa-sha256 rsa.key\n')" "$dir/table:1: bad pattern 'k..test'"
tap_like "default row needs d=" "$(try '* sel rsa-sha256 rsa.key\n')" "$dir/table:1: the default row '\\*' needs d=DOMAIN"
tap_like "duplicate row" "$(try 'k.test sel rsa-sha256 rsa.key\nk.test sel rsa-sha256 rsa.key\n')" \
	"$dir/table:2: duplicate of line 1"
tap_like "bad selector" "$(try 'k.test se\"l rsa-sha256 rsa.key\n')" "$dir/table:1: bad selector"
tap_like "missing table" "$(rm -f table; printf 'dkim_signing_table = %s/nope\n' "$dir" >moat.conf;
	"$signer" -c moat.conf </dev/null 2>&1)" "$dir/nope: cannot open signing table: No such file or directory"
# A relative dkim_signing_table is found next to the file that sets it (the daemons run in /), and
# its key files next to the table.
mkdir -p etc/mxmoat/keys etc/mxmoat/conf.d
cp -p rsa.key etc/mxmoat/keys/rsa.key
printf 'k.test sel rsa-sha256 keys/rsa.key\n' >etc/mxmoat/signing.table
printf 'dkim_signing_table = signing.table\n' >etc/mxmoat/moat.conf
tap_is "relative table: found next to the config file, from another directory" \
	"$(cd / && "$signer" -c "$dir/etc/mxmoat/moat.conf" <"$dir/msg" 2>&1 | grep -c '^DKIM-Signature: .*d=k.test; s=sel;')" 1
tap_like "relative table: the dump shows the resolved path" \
	"$(cd / && "$top_builddir/milter/mxmoat-milter" -c "$dir/etc/mxmoat/moat.conf" -d 2>&1 | grep '^dkim_signing_table')" \
	"^dkim_signing_table = $dir/etc/mxmoat/signing.table\$"
printf 'include = conf.d/sign.conf\n' >etc/mxmoat/moat.conf
printf 'dkim_signing_table = ../signing.table\n' >etc/mxmoat/conf.d/sign.conf
tap_is "relative table in an included file: relative to that file" \
	"$(cd / && "$signer" -c "$dir/etc/mxmoat/moat.conf" <"$dir/msg" 2>&1 | grep -c '^DKIM-Signature: ')" 1
printf 'dkim_signing_table = missing.table\n' >etc/mxmoat/moat.conf
tap_like "relative table missing: the error names the resolved path" \
	"$(cd / && "$signer" -c "$dir/etc/mxmoat/moat.conf" </dev/null 2>&1)" \
	"$dir/etc/mxmoat/missing.table: cannot open signing table: No such file or directory"
tap_like "bad header list key" "$("$signer" -o dkim_signing_table=x -o 'dkim_sign_headers=From, Sub ject' </dev/null 2>&1)" \
	"dkim_sign_headers: bad header field name 'Sub ject'"
tap_done
