-- connect_only.lua - sessions that end before any mail: after negotiate only (xxfi_close is
-- the only callback, with no private data), after connect, and an abrupt close after HELO.
local sock = os.getenv("MILTER_SOCK")

local conn = mt.connect(sock, 20, 0.1)
if conn == nil then error("connect to " .. sock .. " failed") end
if mt.negotiate(conn, nil, nil, nil) ~= nil then error("negotiate failed") end
mt.disconnect(conn, false)

conn = mt.connect(sock, 20, 0.1)
if mt.negotiate(conn, nil, nil, nil) ~= nil then error("negotiate failed") end
if mt.conninfo(conn, "client.example", "192.0.2.10") ~= nil then error("conninfo failed") end
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("connect not continued") end
mt.disconnect(conn, true)

conn = mt.connect(sock, 20, 0.1)
if mt.negotiate(conn, nil, nil, nil) ~= nil then error("negotiate failed") end
if mt.conninfo(conn, "client.example", "192.0.2.11") ~= nil then error("conninfo failed") end
if mt.helo(conn, "client.example") ~= nil then error("helo failed") end
mt.disconnect(conn, false)
mt.echo("connect_only: done")
