-- A headless Neovim session with `nnc lsp`: opens a model, starts the server, hovers on a name,
-- asks for the inlay hints, breaks the file and waits for the diagnostics, and prints what the
-- server said. Written for Neovim 0.7 (Debian 12's) and later, with the client API they share
-- (`vim.lsp.start_client`); see the README for an everyday configuration.
--
--   NNC=target/debug/nnc nvim --headless -u NONE -c 'luafile editors/neovim/hover.lua'
--
-- NNC: the nnc executable (default `nnc`); NNC_FILE: the model (default models/resnet18.net);
-- NNC_WORD: the name to hover on (default b3). Exits with 1 if the server did not answer.

local nnc = os.getenv('NNC') or 'nnc'
local file = os.getenv('NNC_FILE') or 'models/resnet18.net'
local word = os.getenv('NNC_WORD') or 'b3'

local function say(text)
  io.stdout:write(text .. '\n')
end

local function finish(code)
  vim.cmd((code == 0) and 'qa!' or 'cq!')
end

vim.cmd('edit ' .. vim.fn.fnameescape(file))
local buf = vim.api.nvim_get_current_buf()
local id = vim.lsp.start_client({ name = 'nnc', cmd = { nnc, 'lsp' }, root_dir = vim.fn.getcwd() })
if not id then
  say('error: cannot start `' .. nnc .. ' lsp`')
  return finish(1)
end
vim.lsp.buf_attach_client(buf, id)
local ready = vim.wait(10000, function()
  local client = vim.lsp.get_client_by_id(id)
  return client ~= nil and client.server_capabilities ~= nil and client.initialized ~= false
end, 20)
local client = vim.lsp.get_client_by_id(id)
say(string.format('nvim %s; server: %s', tostring(vim.version().major .. '.' .. vim.version().minor .. '.' .. vim.version().patch),
  client and client.name or '?'))
if not ready then
  say('error: the server did not initialise')
  return finish(1)
end

-- The cursor on the first whole-word `word`, as a person would put it there.
local pos = vim.fn.searchpos('\\<' .. word .. '\\>', 'w')
vim.api.nvim_win_set_cursor(0, { pos[1], pos[2] - 1 })
local params = vim.lsp.util.make_position_params()
say(string.format('hover on `%s` at %s:%d:%d', word, file, pos[1], pos[2]))
local answers = vim.lsp.buf_request_sync(buf, 'textDocument/hover', params, 10000) or {}
local hovered = false
for _, answer in pairs(answers) do
  if answer.result and answer.result.contents then
    say(answer.result.contents.value)
    hovered = true
  elseif answer.err then
    say('error: ' .. vim.inspect(answer.err))
  end
end

-- The inlay hints of the whole file (Neovim 0.7 has no display of its own for them).
local range = { start = { line = 0, character = 0 }, ['end'] = { line = vim.api.nvim_buf_line_count(buf), character = 0 } }
local hints = vim.lsp.buf_request_sync(buf, 'textDocument/inlayHint',
  { textDocument = vim.lsp.util.make_text_document_params(), range = range }, 10000) or {}
for _, answer in pairs(hints) do
  for _, hint in ipairs(answer.result or {}) do
    local line = vim.api.nvim_buf_get_lines(buf, hint.position.line, hint.position.line + 1, false)[1]
    say(string.format('  %-70s %s', line:sub(1, hint.position.character):sub(-70), hint.label))
  end
end

-- A broken edit: the diagnostics the server publishes.
local target = vim.fn.searchpos('\\<linear(classes)', 'w')
if target[1] > 0 then
  vim.api.nvim_buf_set_text(buf, target[1] - 1, target[2] - 1 + 7, target[1] - 1, target[2] - 1 + 14, { 'classes, bias=0' })
  vim.wait(10000, function() return #vim.diagnostic.get(buf) > 0 end, 20)
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    say(string.format('diagnostic %s:%d:%d %s [%s]', file, d.lnum + 1, d.col + 1, d.message:gsub('\n.*', ''), d.code or ''))
  end
end

finish(hovered and 0 or 1)
