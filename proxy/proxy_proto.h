/*
 * proxy_proto.h - the PROXY protocol's wire constants (haproxy's proxy-protocol.txt, versions 1
 * and 2), shared by the header the proxy sends to its backend (upstream.c) and the one it reads
 * from a load balancer in front of it (proxy_inbound.c).
 */
#ifndef PX_PROXY_PROTO_H
#define PX_PROXY_PROTO_H

/* v1: one text line, "PROXY TCP4|TCP6|UNKNOWN ...\r\n", 107 bytes at most CRLF included (2.1) */
#define PX_PP1_PREFIX "PROXY "
#define PX_PP1_MAX 107

/* v2: 12-byte signature, version/command, family/transport, 16-bit length, then the block (2.2) */
#define PX_PP2_SIG "\r\n\r\n\0\r\nQUIT\n"
#define PX_PP2_SIG_LEN 12
#define PX_PP2_HDR_LEN 16 /* signature + ver/cmd + fam + len */
#define PX_PP2_VERSION 0x20 /* high nibble of byte 13 */
#define PX_PP2_CMD_LOCAL 0x00 /* health check: use the real connection's addresses */
#define PX_PP2_CMD_PROXY 0x01
#define PX_PP2_TCP4 0x11 /* AF_INET, SOCK_STREAM */
#define PX_PP2_TCP6 0x21 /* AF_INET6, SOCK_STREAM */
#define PX_PP2_TCP4_LEN 12 /* 2 x 4 address bytes + 2 x 2 port bytes */
#define PX_PP2_TCP6_LEN 36 /* 2 x 16 + 2 x 2 */
#define PX_PP2_TLV_HDR 3 /* type, 16-bit length */

#endif /* PX_PROXY_PROTO_H */
