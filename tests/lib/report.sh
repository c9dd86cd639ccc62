# report.sh - what the DMARC report tests ask of the reports mxmoat-report made (source it; bash).
#
#   report_names DIR     the files in DIR without their period and id, sorted, on one line:
#                        "receiver!policy-domain receiver!policy-domain "
#   report_valid DIR     how many of the gzip-compressed reports in DIR validate against
#                        doc/dmarc-aggregate-report.xsd (xmllint)

report_names() {
	ls "$1" | sed 's/![0-9!]*![0-9a-f]*\.xml\.gz$//' | sort | tr '\n' ' '
}

report_valid() {
	local f valid=0
	for f in "$1"/*; do
		gzip -dc "$f" | xmllint --noout --schema "$top_srcdir/doc/dmarc-aggregate-report.xsd" - 2>/dev/null &&
			valid=$((valid + 1))
	done
	echo "$valid"
}
