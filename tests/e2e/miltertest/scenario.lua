-- scenario.lua - one row of tests/e2e/data/daemons.table through the milter, for
-- daemons_table.sh: connect from SC_CLIENT, HELO SC_HELO, then SC_TIMES transactions of MAIL
-- SC_MAIL (path and parameters), RCPT for each of SC_RCPTS, DATA, and the message in the file
-- SC_MESSAGE (header fields, end of header, body, end of message); SC_LOGIN, when set, is
-- {auth_authen} at each MAIL (a login Postfix accepted). Prints
-- "result T:STAGE REPLY" for the first reply that is not "continue" (T: the transaction, 0 before
-- the first MAIL; STAGE as the SMTP client sees it: header, body and end of message are all
-- answered after the final dot, "eom"), or "result T:eom continue" when every step went through.
local sock = os.getenv("MILTER_SOCK")
local names = {
	[SMFIR_CONTINUE] = "continue", [SMFIR_ACCEPT] = "accept", [SMFIR_REJECT] = "reject",
	[SMFIR_TEMPFAIL] = "tempfail", [SMFIR_REPLYCODE] = "replycode", [SMFIR_DISCARD] = "discard",
}

local function words(s)
	local t = {}
	for w in string.gmatch(s or "", "%S+") do t[#t + 1] = w end
	return t
end

-- the message: header fields up to the empty line, then the body with CRLF line ends
local fields, body = {}, {}
local in_header = true
for line in io.lines(os.getenv("SC_MESSAGE")) do
	if in_header and line == "" then
		in_header = false
	elseif in_header then
		local name, value = string.match(line, "^([^:]+):(.*)$")
		if name == nil then error("not a header field: " .. line) end
		fields[#fields + 1] = { name, value }
	else
		body[#body + 1] = line .. "\r\n"
	end
end

local conn = mt.connect(sock, 20, 0.1)
if conn == nil then error("connect failed") end
if mt.negotiate(conn, nil, nil, nil) ~= nil then error("negotiate failed") end

-- step - RC of the milter command for STAGE of transaction T; false when the session stops
local function step(t, stage, rc)
	if rc ~= nil then error(stage .. ": the milter command failed") end
	local r = mt.getreply(conn)
	if r == SMFIR_CONTINUE then return true end
	mt.echo("result " .. t .. ":" .. stage .. " " .. (names[r] or tostring(r)))
	return false
end

local function run()
	if not step(0, "connect", mt.conninfo(conn, "unknown", os.getenv("SC_CLIENT"))) then return end
	if not step(0, "helo", mt.helo(conn, os.getenv("SC_HELO"))) then return end
	local times = tonumber(os.getenv("SC_TIMES")) or 1
	for t = 1, times do
		-- a login that succeeded (Postfix): {auth_authen} with MAIL
		local login = os.getenv("SC_LOGIN")
		if login ~= nil and login ~= "" then mt.macro(conn, SMFIC_MAIL, "{auth_authen}", login) end
		if not step(t, "mail", mt.mailfrom(conn, (table.unpack or unpack)(words(os.getenv("SC_MAIL"))))) then return end
		for i, r in ipairs(words(os.getenv("SC_RCPTS"))) do
			if not step(t, "rcpt" .. i, mt.rcptto(conn, r)) then return end
		end
		-- DATA only when the milter asked for it (mxmoat-milter decides nothing there today)
		if not mt.test_option(conn, SMFIP_NODATA) and not step(t, "data", mt.data(conn)) then return end
		for _, f in ipairs(fields) do
			-- the value as Postfix passes it: with its leading space only if the milter asked
			local v = f[2]
			if not mt.test_option(conn, SMFIP_HDR_LEADSPC) then v = string.gsub(v, "^%s+", "") end
			if not step(t, "eom", mt.header(conn, f[1], v)) then return end
		end
		if not step(t, "eom", mt.eoh(conn)) then return end
		if #body > 0 and not step(t, "eom", mt.bodystring(conn, table.concat(body))) then return end
		if not step(t, "eom", mt.eom(conn)) then return end
	end
	mt.echo("result " .. times .. ":eom continue")
end

run()
mt.disconnect(conn, true)
