-- truncated.lua - connections that drop mid-transaction: after MAIL, after a header, and in the
-- body; the milter must free each and keep serving.
local sock = os.getenv("MILTER_SOCK")

local function start(ip)
	local conn = mt.connect(sock, 20, 0.1)
	if conn == nil then error("connect failed") end
	if mt.negotiate(conn, nil, nil, nil) ~= nil then error("negotiate failed") end
	if mt.conninfo(conn, "client.example", ip) ~= nil then error("conninfo failed") end
	if mt.helo(conn, "client.example") ~= nil then error("helo failed") end
	if mt.mailfrom(conn, "<a@example.org>") ~= nil then error("mail failed") end
	return conn
end

local conn = start("192.0.2.30")
mt.disconnect(conn, false)

conn = start("192.0.2.31")
if mt.rcptto(conn, "<b@example.net>") ~= nil then error("rcpt failed") end
if mt.header(conn, "Subject", "cut") ~= nil then error("header failed") end
mt.disconnect(conn, false)

conn = start("192.0.2.32")
if mt.rcptto(conn, "<b@example.net>") ~= nil then error("rcpt failed") end
if mt.eoh(conn) ~= nil then error("eoh failed") end
if mt.bodyrandom(conn, 100000) ~= nil then error("body failed") end
mt.disconnect(conn, false)
mt.echo("truncated: done")
