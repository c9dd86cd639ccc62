-- limits.lua - the core's verdicts as milter replies: a recipient over limit_recipients (set to
-- 2 by the caller) is answered with a reply code (452), a bad SIZE= with 552.
local sock = os.getenv("MILTER_SOCK")

local conn = mt.connect(sock, 20, 0.1)
if conn == nil then error("connect failed") end
if mt.negotiate(conn, nil, nil, nil) ~= nil then error("negotiate failed") end
if mt.conninfo(conn, "client.example", "192.0.2.40") ~= nil then error("conninfo failed") end
if mt.helo(conn, "client.example") ~= nil then error("helo failed") end
if mt.mailfrom(conn, "<a@example.org>") ~= nil then error("mail failed") end
for i = 1, 2 do
	if mt.rcptto(conn, "<r" .. i .. "@example.net>") ~= nil then error("rcpt failed") end
	if mt.getreply(conn) ~= SMFIR_CONTINUE then error("rcpt " .. i .. " not continued") end
end
if mt.rcptto(conn, "<r3@example.net>") ~= nil then error("rcpt 3 failed") end
if mt.getreply(conn) ~= SMFIR_REPLYCODE then error("rcpt 3: no reply code") end
if mt.mailfrom(conn, "<a@example.org>", "SIZE=99999999999") ~= nil then error("mail failed") end
if mt.getreply(conn) ~= SMFIR_REPLYCODE then error("SIZE: no reply code") end
mt.disconnect(conn, true)
mt.echo("limits: done")
