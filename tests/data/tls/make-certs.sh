#!/bin/sh
# make-certs.sh - regenerate the test-only certificates in this directory (never use them elsewhere).
# A test CA (ECDSA P-256) signs: mail.test as RSA-2048 and as ECDSA P-256 (the default set),
# other.test as ECDSA P-256 (an SNI set), and a client certificate. Valid for 100 years.
# Git does not keep file modes: tests copy the keys to a private directory with mode 0600.
set -eu
cd "$(dirname "$0")"
days=36500
ext() { printf 'subjectAltName=DNS:%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' "$1"; }
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
openssl req -x509 -new -key ca.key -sha256 -days $days -subj "/CN=mxmoat test CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out ca.pem
sign() {	# sign NAME KEYFILE OUT
	openssl req -new -key "$2" -subj "/CN=$1" -out tmp.csr
	ext "$1" > tmp.ext
	openssl x509 -req -in tmp.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days $days \
		-extfile tmp.ext -out "$3"
	rm -f tmp.csr tmp.ext
}
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key
sign mail.test rsa.key rsa.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ecdsa.key
sign mail.test ecdsa.key ecdsa.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key
sign other.test other.key other.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out client.key
sign client.test client.key client.pem
rm -f ca.srl
