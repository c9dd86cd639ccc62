-- abort_mid_body.lua - a transaction aborted in the middle of the body, then a second one on
-- the same connection goes through to end of message.
local sock = os.getenv("MILTER_SOCK")

local conn = mt.connect(sock, 20, 0.1)
if conn == nil then error("connect failed") end
if mt.negotiate(conn, nil, nil, nil) ~= nil then error("negotiate failed") end
if mt.conninfo(conn, "client.example", "192.0.2.20") ~= nil then error("conninfo failed") end
if mt.helo(conn, "client.example") ~= nil then error("helo failed") end
if mt.mailfrom(conn, "<a@example.org>") ~= nil then error("mail failed") end
if mt.rcptto(conn, "<b@example.net>") ~= nil then error("rcpt failed") end
if mt.header(conn, "From", "a@example.org") ~= nil then error("header failed") end
if mt.header(conn, "Subject", "first") ~= nil then error("header failed") end
if mt.eoh(conn) ~= nil then error("eoh failed") end
if mt.bodystring(conn, "half a body\r\n") ~= nil then error("body failed") end
if mt.abort(conn) ~= nil then error("abort failed") end

if mt.mailfrom(conn, "<c@example.org>") ~= nil then error("mail 2 failed") end
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("mail 2 not continued") end
if mt.rcptto(conn, "<d@example.net>") ~= nil then error("rcpt 2 failed") end
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("rcpt 2 not continued") end
if mt.header(conn, "Subject", "second") ~= nil then error("header 2 failed") end
if mt.eoh(conn) ~= nil then error("eoh 2 failed") end
if mt.bodystring(conn, "a whole body\r\n") ~= nil then error("body 2 failed") end
if mt.eom(conn) ~= nil then error("eom 2 failed") end
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("eom 2 not continued") end
mt.disconnect(conn, true)
mt.echo("abort_mid_body: done")
