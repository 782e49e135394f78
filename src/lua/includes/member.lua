-- Reading a member. A member is an opaque byte string: it is never re-encoded, only read. Every
-- script reads a member's id, priority, timestamp and timeout through these functions, so a
-- member gets the same verdict whichever script reads it, and the TypeScript side reads the same
-- id (src/envelope.ts, decodeEnvelope: JSON.parse, last duplicate key wins, as cjson does).

-- True for a number that is neither NaN nor infinite.
local function isFinite(x)
  return type(x) == 'number' and x == x and x ~= math.huge and x ~= -math.huge
end

-- True when s is valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
local function isUtf8(s)
  if not string.find(s, '[\128-\255]') then return true end
  local i, n = 1, #s
  while i <= n do
    local c = string.byte(s, i)
    local extra, min
    if c < 0x80 then extra = 0
    elseif c >= 0xC2 and c <= 0xDF then extra, min = 1, 0x80
    elseif c >= 0xE0 and c <= 0xEF then extra, min = 2, 0x800
    elseif c >= 0xF0 and c <= 0xF4 then extra, min = 3, 0x10000
    else return false end
    if extra > 0 then
      if i + extra > n then return false end
      local cp = c % (2 ^ (6 - extra))
      for j = 1, extra do
        local b = string.byte(s, i + j)
        if b < 0x80 or b > 0xBF then return false end
        cp = cp * 64 + (b - 0x80)
      end
      if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return false end
    end
    i = i + extra + 1
  end
  return true
end

-- True for text usable as an id: non-empty UTF-8 without U+FFFD (the mark of a lone surrogate
-- read by withoutLoneSurrogates, or of bytes a UTF-8 decoder replaced: such an id would not be
-- the same text on every path).
local function isIdText(id)
  return id ~= '' and isUtf8(id) and not string.find(id, '\239\191\189', 1, true)
end

-- A decoded message's id, as the key suffix of message:<id>: a non-empty UTF-8 string, or a
-- safe integer written in decimal (JavaScript's String(n)). Anything else is no id.
local function idOf(msg)
  local id = msg.id
  if type(id) == 'number' then
    if isFinite(id) and id == math.floor(id) and math.abs(id) <= 9007199254740991 then
      if id == 0 then return '0' end
      return string.format('%.0f', id)
    end
    return nil
  end
  if type(id) == 'string' and isIdText(id) then return id end
  return nil
end

-- The id at the start of a member in redactor's own encoding ({"id":"…",…), read without a
-- decode, or nil. Only when no other "id" key can follow (no second '"id"', no \u escape that
-- could spell one): then it is the id a full decode would find.
local function leadingId(member)
  local id = string.match(member, '^{"id":"([^"\\]+)",')
  if not id then return nil end
  if string.find(member, '"id"', #id + 8, true) or string.find(member, '\\u', 1, true) then return nil end
  if not isIdText(id) then return nil end
  return id
end

-- The member's text with every lone UTF-16 surrogate escape (\uD800-\uDFFF not in a valid pair)
-- replaced by \uFFFD, which cjson refuses but JSON.parse accepts: both then read the same text.
local function withoutLoneSurrogates(member)
  local parts, last, i = {}, 1, 1
  while true do
    local at = string.find(member, '\\', i, true)
    if not at then break end
    local esc = string.sub(member, at + 1, at + 1)
    if esc == 'u' then
      local hex = string.sub(member, at + 2, at + 5)
      local code = tonumber(hex, 16)
      local nextI = at + 6
      if code and #hex == 4 and code >= 0xD800 and code <= 0xDFFF then
        local paired = false
        if code <= 0xDBFF then
          local low = string.match(member, '^\\u(%x%x%x%x)', at + 6)
          local lowCode = low and tonumber(low, 16)
          if lowCode and lowCode >= 0xDC00 and lowCode <= 0xDFFF then
            paired = true
            nextI = at + 12
          end
        end
        if not paired then
          parts[#parts + 1] = string.sub(member, last, at - 1)
          parts[#parts + 1] = '\\ufffd'
          last = at + 6
        end
      end
      i = nextI
    else
      i = at + 2
    end
  end
  if last == 1 then return member end
  parts[#parts + 1] = string.sub(member, last)
  return table.concat(parts)
end

-- One JSON string token (quotes included) decoded, or nil.
local function decodeString(token)
  local ok, text = pcall(cjson.decode, token)
  if not ok and string.find(token, '\\u', 1, true) then ok, text = pcall(cjson.decode, withoutLoneSurrogates(token)) end
  if ok and type(text) == 'string' then return text end
  return nil
end

-- The position of the quote that closes the string token opening at `at`, or nil.
local function stringEnd(member, at)
  local j = at + 1
  while true do
    local q = string.find(member, '["\\]', j)
    if not q then return nil end
    if string.byte(member, q) == 92 then j = q + 2 else return q end
  end
end

-- The id of a member that cjson cannot decode but JSON.parse may (nesting past cjson's limit of
-- 1000): the value of the last "id" key of the top-level object, found by walking the text from
-- one structural character to the next, as JSON.parse would read it. nil when there is none or
-- it is not a usable id.
local function scannedId(member)
  if not string.find(member, '^%s*{') then return nil end
  local depth, i, expectKey, id = 0, 1, false, nil
  while true do
    local at, _, c = string.find(member, '([{}%[%]",])', i)
    if not at then return id end
    if c == '"' then
      local close = stringEnd(member, at)
      if not close then return id end
      if depth == 1 and expectKey and decodeString(string.sub(member, at, close)) == 'id' then
        local vAt = select(2, string.find(member, '^%s*:%s*', close + 1))
        vAt = vAt and vAt + 1
        id = nil
        if vAt and string.byte(member, vAt) == 34 then
          local vClose = stringEnd(member, vAt)
          local text = vClose and decodeString(string.sub(member, vAt, vClose))
          if text and isIdText(text) then id = text end
          close = vClose or close
        elseif vAt then
          local token = string.match(member, '^%-?%d[%d%.eE+-]*', vAt)
          local n = token and string.find(member, '^[%s,}]', vAt + #token) and tonumber(token)
          if n and isFinite(n) and n == math.floor(n) and math.abs(n) <= 9007199254740991 then
            id = n == 0 and '0' or string.format('%.0f', n)
          end
        end
      end
      expectKey = false
      i = close + 1
    elseif c == '{' or c == '[' then
      depth = depth + 1
      expectKey = depth == 1
      i = at + 1
    elseif c == '}' or c == ']' then
      depth = depth - 1
      i = at + 1
    else
      if depth == 1 then expectKey = true end
      i = at + 1
    end
  end
end

-- True when `token` follows JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
local function isJsonNumber(token)
  local int, frac, exp = string.match(token, '^%-?(%d+)(%.?%d*)(.*)$')
  if not int then return false end
  if #int > 1 and string.sub(int, 1, 1) == '0' then return false end
  if frac ~= '' and #frac < 2 then return false end
  return exp == '' or string.find(exp, '^[eE][+-]?%d+$') ~= nil
end

-- True when the text holds, outside its strings, a token that cjson reads and JSON.parse refuses:
-- NaN, Infinity, hexadecimal (0x1F), a leading zero (01), a leading plus (+1) or a bare dot (.5,
-- 1.). Such a member is refused on every path, as JSON.parse would refuse it.
local function hasInvalidToken(member)
  local i, n = 1, #member
  while i <= n do
    local q = string.find(member, '"', i, true)
    local seg = string.sub(member, i, (q or n + 1) - 1)
    for word in string.gmatch(seg, '%a+') do
      if word ~= 'true' and word ~= 'false' and word ~= 'null' and word ~= 'e' and word ~= 'E' then
        return true
      end
    end
    for token in string.gmatch(seg, '[+%-%d%.][%d%.eE+%-]*') do
      if not isJsonNumber(token) then return true end
    end
    if not q then return false end
    local close = stringEnd(member, q)
    if not close then return false end
    i = close + 1
  end
  return false
end

-- The member decoded as a JSON object (a Lua table), or nil with the reason it is not one and,
-- third, true when it is valid JSON all the same (too deep for cjson: scannedId reads its id).
local function decodeMember(member)
  local ok, msg = pcall(cjson.decode, member)
  if not ok and string.find(member, '\\u', 1, true) then
    ok, msg = pcall(cjson.decode, withoutLoneSurrogates(member))
  end
  if not ok then
    -- Nested deeper than cjson goes: valid JSON all the same, whose id JSON.parse would read.
    if string.find(tostring(msg), 'nested', 1, true) then
      return nil, 'nested deeper than 1000 levels', not hasInvalidToken(member)
    end
    return nil, 'not valid JSON'
  end
  if type(msg) ~= 'table' then return nil, 'not a JSON object' end
  if hasInvalidToken(member) then return nil, 'not valid JSON (NaN, Infinity, 0x…, 01 or +1)' end
  return msg
end

-- The id of a member and, when it had to be decoded, the decoded message. A member whose id
-- cannot be read returns nil.
local function memberId(member)
  local id = leadingId(member)
  if id then return id, nil end
  local msg = decodeMember(member)
  if not msg then return nil, nil end
  return idOf(msg), msg
end

-- A member's priority as a number 1-4 for scoring (NORMAL when it declares none that is valid).
local function priorityOf(msg)
  local p = msg and msg.priority
  if isFinite(p) and p == math.floor(p) and p >= 1 and p <= 4 then return p end
  return 2
end

-- A member's send time in seconds, or nil when it has no valid one.
local function timestampOf(msg)
  local t = msg and msg.timestamp
  if isFinite(t) and t >= 0 then return t end
  return nil
end

-- A member's deadline (timestamp + timeout, seconds), or nil when it has none that is valid.
local function deadlineOf(msg)
  local timeout, sentAt = msg and msg.timeout, timestampOf(msg)
  if isFinite(timeout) and timeout >= 0 and sentAt then return sentAt + timeout end
  return nil
end

-- True when a decoded member breaks a rule of the envelope that src/envelope.ts (decodeEnvelope)
-- checks: the runtime then dead-letters it as invalid-envelope. A script leaves such a member to
-- that verdict rather than giving it another one (timeout), so it gets the same on every path.
local function breaksEnvelope(msg)
  local function text(v) return type(v) == 'string' and v ~= '' end
  if not (text(msg.sender) and text(msg.recipient) and text(msg.message_type)) or msg.payload == nil then
    return true
  end
  local p, ts, timeout, replyTo = msg.priority, msg.timestamp, msg.timeout, msg.reply_to
  if not (isFinite(p) and p == math.floor(p) and p >= 1 and p <= 4) then return true end
  if not (isFinite(ts) and ts >= 0) then return true end
  if timeout ~= nil and timeout ~= cjson.null and not (isFinite(timeout) and timeout >= 0) then return true end
  if replyTo ~= nil and replyTo ~= cjson.null and type(replyTo) ~= 'string'
    and not (isFinite(replyTo) and replyTo == math.floor(replyTo) and math.abs(replyTo) <= 9007199254740991) then
    return true
  end
  return false
end
