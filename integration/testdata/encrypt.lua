-- miltertest script for danemilter: protocol conformance of the encryption
-- decision, played against a running "danemilter serve" whose resolver sees
-- the integration test's signed zone secure.test.
--
--   miltertest -D port=10025 -s encrypt.lua
--
-- alice@secure.test has a DNSSEC-secure SMIMEA record: the filter must
-- accept the message, replace its body and add "X-Danemilter: encrypted...".
-- carol@secure.test has none (secure denial; policy dane): the filter must
-- accept the message and change nothing.

if port == nil then
	error("usage: miltertest -D port=N -s encrypt.lua")
end
local sock = "inet:" .. port .. "@127.0.0.1"

local function ok(err, what)
	if err ~= nil then
		error(what .. " failed: " .. tostring(err))
	end
end

local function reply(conn, what, ...)
	local got = mt.getreply(conn)
	for _, want in ipairs({...}) do
		if got == want then
			return got
		end
	end
	error(what .. ": unexpected milter reply " .. tostring(got))
end

-- send runs one transaction up to end of message and returns the
-- connection, for the caller to inspect the end-of-message actions.
local function send(qid, rcpt, subject)
	local conn = mt.connect(sock, 20, 0.25)
	if conn == nil then
		error("cannot connect to " .. sock)
	end
	ok(mt.negotiate(conn, nil, nil, nil), "negotiate")
	-- With SMFIP_HDR_LEADSPC the filter gets header values exactly as
	-- they follow the colon, leading space included (as from Postfix).
	local sp = ""
	if mt.test_option(conn, SMFIP_HDR_LEADSPC) then
		sp = " "
	end
	mt.macro(conn, SMFIC_MAIL, "i", qid)
	ok(mt.mailfrom(conn, "<sender@local.test>"), "mailfrom")
	reply(conn, "MAIL FROM", SMFIR_CONTINUE)
	ok(mt.rcptto(conn, "<" .. rcpt .. ">"), "rcptto")
	reply(conn, "RCPT TO " .. rcpt, SMFIR_CONTINUE)
	local headers = {
		{"From", "Sender <sender@local.test>"},
		{"To", "<" .. rcpt .. ">"},
		{"Subject", subject},
		{"Date", "Wed, 25 Nov 2026 10:00:00 +0000"},
		{"Message-ID", "<" .. qid .. "@local.test>"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=us-ascii"},
		{"Content-Transfer-Encoding", "7bit"},
	}
	for _, h in ipairs(headers) do
		ok(mt.header(conn, h[1], sp .. h[2]), "header " .. h[1])
		reply(conn, "header " .. h[1], SMFIR_CONTINUE)
	end
	ok(mt.eoh(conn), "eoh")
	reply(conn, "end of header", SMFIR_CONTINUE)
	ok(mt.bodystring(conn, "Hello,\r\n\r\nthis is miltertest speaking.\r\n"), "body")
	reply(conn, "body", SMFIR_CONTINUE)
	ok(mt.eom(conn), "eom")
	reply(conn, "end of message to " .. rcpt, SMFIR_ACCEPT, SMFIR_CONTINUE)
	return conn
end

-- 1. alice: encrypted.
mt.echo("alice@secure.test: expect the body replaced and a trace header")
local conn = send("MTALICE1", "alice@secure.test", "miltertest to alice")
if not mt.eom_check(conn, MT_BODYCHANGE) then
	error("alice: the filter did not replace the body")
end
if not mt.eom_check(conn, MT_HDRADD, "X-Danemilter") then
	error("alice: the filter did not add X-Danemilter")
end
local trace = mt.getheader(conn, "X-Danemilter", 0)
if trace == nil or not string.find(trace, "^%s*encrypted") then
	error("alice: X-Danemilter is " .. tostring(trace) .. ", want encrypted...")
end
if not mt.eom_check(conn, MT_HDRADD, "Content-Type") then
	error("alice: the filter did not add the application/pkcs7-mime Content-Type")
end
mt.echo("alice: X-Danemilter:" .. trace)
mt.disconnect(conn)

-- 2. carol: secure denial, policy dane: passed unchanged.
mt.echo("carol@secure.test: expect no change")
conn = send("MTCAROL1", "carol@secure.test", "miltertest to carol")
if mt.eom_check(conn, MT_BODYCHANGE) then
	error("carol: the filter replaced the body")
end
if mt.eom_check(conn, MT_HDRADD) or mt.eom_check(conn, MT_HDRCHANGE) or mt.eom_check(conn, MT_HDRDELETE) then
	error("carol: the filter changed the header")
end
mt.disconnect(conn)

mt.echo("miltertest: all checks passed")
