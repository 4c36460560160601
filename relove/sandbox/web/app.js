// relove sandbox web chat. Everything user-supplied is inserted as text nodes; formatting is
// rebuilt from the message's entities, as a Telegram app does (never innerHTML).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { users: [], userId: null, version: -1, poll: 0, shownAnswers: new Set(),
  commands: [] };

// ---------------------------------------------------------------------------------------------
// API

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (method !== "GET") {
    // The control API takes state-changing requests only as JSON (it refuses other sites).
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body === undefined ? {} : body);
  }
  const resp = await fetch("/api/" + path, opts);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.error || "HTTP " + resp.status);
  return data;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function toast(text, alert) {
  const box = $("toast");
  box.textContent = text;
  box.classList.toggle("alert", !!alert);
  box.classList.remove("hidden");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.add("hidden"), alert ? 5000 : 2500);
}

// ---------------------------------------------------------------------------------------------
// Formatting from entities (offsets in UTF-16 units, which is how JavaScript strings count)

const ENTITY_TAGS = { bold: "strong", italic: "em", underline: "u", strikethrough: "s",
  code: "code", pre: "pre", blockquote: "blockquote", expandable_blockquote: "blockquote",
  text_link: "a", url: "a", email: "a", text_mention: "span", mention: "span", hashtag: "span",
  cashtag: "span", bot_command: "span", spoiler: "span" };
const SAFE_URL = /^(https?:|tg:|mailto:)/i;

function entityNode(entity, text) {
  const node = document.createElement(ENTITY_TAGS[entity.type] || "span");
  let href = null;
  if (entity.type === "text_link") href = entity.url;
  else if (entity.type === "url") href = /^[a-z][a-z0-9+.-]*:/i.test(text) ? text : "http://" + text;
  else if (entity.type === "email") href = "mailto:" + text;
  if (href && SAFE_URL.test(href)) {
    node.href = href; node.rel = "noopener noreferrer nofollow"; node.target = "_blank";
  }
  if (entity.type === "spoiler") {
    node.className = "spoiler";
    node.addEventListener("click", () => node.classList.add("revealed"));
  } else if (entity.type === "expandable_blockquote") {
    node.className = "expandable";
    node.addEventListener("click", () => node.classList.toggle("open"));
  } else if (["mention", "hashtag", "cashtag", "bot_command", "text_mention"].includes(entity.type)) {
    node.className = "link";
    if (entity.type === "text_mention" && entity.user) node.title = "user " + entity.user.id;
  }
  return node;
}

function renderEntities(text, entities) {
  const out = document.createDocumentFragment();
  const sorted = [...(entities || [])].sort((a, b) => a.offset - b.offset || b.length - a.length);
  const stack = [{ end: text.length, node: out }];
  let pos = 0;
  const flush = (to) => {
    if (to > pos) {
      stack[stack.length - 1].node.appendChild(document.createTextNode(text.slice(pos, to)));
      pos = to;
    }
  };
  const close = () => { flush(stack[stack.length - 1].end); stack.pop(); };
  for (const e of sorted) {
    while (stack.length > 1 && stack[stack.length - 1].end <= e.offset) close();
    flush(e.offset);
    const end = Math.min(e.offset + e.length, stack[stack.length - 1].end);
    const node = entityNode(e, text.slice(e.offset, end));
    stack[stack.length - 1].node.appendChild(node);
    stack.push({ end, node });
  }
  while (stack.length > 1) close();
  flush(text.length);
  return out;
}

function messageBody(m) {
  const body = el("div", "text");
  const text = m.text ?? m.caption;
  if (text === null || text === undefined) return null;
  body.appendChild(renderEntities(text, m.text != null ? m.entities : m.caption_entities));
  return body;
}

// ---------------------------------------------------------------------------------------------
// Users

function initials(u) {
  return ((u.first_name || "?")[0] + ((u.last_name || "")[0] || "")).toUpperCase();
}

function displayName(u) {
  return [u.first_name, u.last_name].filter(Boolean).join(" ");
}

function avatar(u, node) {
  node.textContent = initials(u);
  node.dataset.hue = String(Math.abs(u.id) % 8);
}

async function loadUsers() {
  try {
    state.users = (await api("GET", "users")).users;
  } catch (e) { return; }
  renderUsers();
  if (state.userId !== null) renderChatHead();
}

function renderUsers() {
  const list = $("user-list");
  const query = $("search").value.trim().toLowerCase();
  list.replaceChildren();
  const users = [...state.users].sort((a, b) => (b.last_date || 0) - (a.last_date || 0) || a.id - b.id);
  for (const u of users) {
    const hay = (displayName(u) + " " + (u.username || "") + " " + u.id).toLowerCase();
    if (query && !hay.includes(query)) continue;
    const item = el("li", "user" + (u.id === state.userId ? " active" : ""));
    item.tabIndex = 0;
    item.dataset.userId = String(u.id);
    const av = el("div", "avatar");
    avatar(u, av);
    const info = el("div", "user-info");
    const line = el("div", "user-line");
    line.appendChild(el("strong", null, displayName(u)));
    if (u.blocked) line.appendChild(el("span", "badge", "blocked"));
    if (u.deactivated) line.appendChild(el("span", "badge", "deactivated"));
    info.appendChild(line);
    info.appendChild(el("small", null, u.last_message || (u.username ? "@" + u.username : "id " + u.id)));
    item.append(av, info);
    item.addEventListener("click", () => selectUser(u.id));
    item.addEventListener("keydown", (e) => { if (e.key === "Enter") selectUser(u.id); });
    list.appendChild(item);
  }
}

function currentUser() {
  return state.users.find((u) => u.id === state.userId);
}

function renderChatHead() {
  const u = currentUser();
  if (!u) return;
  $("chat-name").textContent = displayName(u);
  const bits = [u.username ? "@" + u.username : "id " + u.id];
  if (u.blocked) bits.push("has blocked the bot");
  if (u.deactivated) bits.push("deactivated");
  $("chat-status").textContent = bits.join(" · ");
  avatar(u, $("chat-avatar"));
  $("block-btn").textContent = u.blocked ? "Unblock bot" : "Block bot";
  $("block-btn").classList.remove("hidden");
  $("deactivate-btn").classList.toggle("hidden", !!u.deactivated);
  const canWrite = !u.blocked && !u.deactivated;
  $("text").disabled = !canWrite;
  $("send").disabled = !canWrite;
  $("text").placeholder = canWrite ? "Message" : (u.blocked ? "Unblock the bot to write" : "Deactivated");
}

function selectUser(id) {
  state.userId = id;
  state.version = -1;
  state.poll += 1;
  state.shownAnswers = new Set();
  history.replaceState(null, "", "#user=" + id);
  document.body.classList.add("in-chat");
  $("messages").replaceChildren();
  renderUsers();
  renderChatHead();
  pollChat(state.poll);
  $("text").focus();
}

// ---------------------------------------------------------------------------------------------
// Chat

async function pollChat(token) {
  while (token === state.poll) {
    let view;
    try {
      const wait = state.version < 0 ? 0 : 25;
      view = await api("GET", `users/${state.userId}/messages?since=${state.version}&wait=${wait}`);
    } catch (e) {
      await new Promise((r) => setTimeout(r, 1500));
      continue;
    }
    if (token !== state.poll) return;
    if (view.chat.version !== state.version) {
      state.version = view.chat.version;
      renderMessages(view);
    }
  }
}

function keyboardRow(row, onPress) {
  const line = el("div", "kb-row");
  for (const button of row) {
    const label = typeof button === "string" ? button : button.text;
    const b = el("button", "kb-btn", label);
    b.type = "button";
    if (button.url) {
      b.classList.add("link");
      b.title = button.url;
      b.addEventListener("click", () => { if (SAFE_URL.test(button.url)) window.open(button.url, "_blank", "noopener"); });
    } else {
      b.addEventListener("click", () => onPress(button, b));
    }
    line.appendChild(b);
  }
  return line;
}

function renderMessages(view) {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  box.replaceChildren();
  if (!view.messages.length) box.appendChild(el("div", "empty", "No messages yet. Send /start."));
  for (const m of view.messages) box.appendChild(renderMessage(m));
  if (view.chat.action) box.appendChild(el("div", "typing", "bot is " + view.chat.action.replace(/_/g, " ") + "…"));
  renderReplyKeyboard(view.chat.reply_keyboard);
  for (const a of view.callback_answers) {
    if (a.answered && !state.shownAnswers.has(a.id)) {
      state.shownAnswers.add(a.id);
      if (a.answer && a.answer.text) toast(a.answer.text, a.answer.show_alert);
    }
  }
  if (atBottom || state.version <= 1) box.scrollTop = box.scrollHeight;
  const u = currentUser();
  if (u && view.chat.user && (u.blocked !== view.chat.user.blocked || u.deactivated !== view.chat.user.deactivated)) loadUsers();
}

function renderMessage(m) {
  const wrap = el("div", "msg " + (m.from_bot ? "in" : "out") + (m.deleted ? " deleted" : ""));
  wrap.dataset.messageId = String(m.message_id);
  const bubble = el("div", "bubble");
  if (m.deleted) {
    bubble.appendChild(el("em", "meta", "message deleted"));
    wrap.appendChild(bubble);
    return wrap;
  }
  if (m.pinned) bubble.appendChild(el("div", "forwarded", "📌 pinned"));
  if (m.forwarded) bubble.appendChild(el("div", "forwarded", "Forwarded message"));
  if (m.via_bot) bubble.appendChild(el("div", "forwarded", "via the bot (inline)"));
  if (m.photo) {
    const img = el("img", "photo");
    img.alt = "photo";
    img.src = "/api/files/" + encodeURIComponent(m.photo[m.photo.length - 1].file_id);
    img.addEventListener("error", () => img.replaceWith(el("div", "attachment", "🖼 photo")));
    bubble.appendChild(img);
  }
  if (m.document) {
    const link = el("a", "attachment", "📄 " + (m.document.file_name || "document"));
    link.href = "/api/files/" + encodeURIComponent(m.document.file_id);
    link.setAttribute("download", m.document.file_name || "document");
    bubble.appendChild(link);
  }
  if (m.video) {
    const link = el("a", "attachment", "🎬 " + (m.video.file_name || "video"));
    link.href = "/api/files/" + encodeURIComponent(m.video.file_id);
    link.setAttribute("download", m.video.file_name || "video");
    bubble.appendChild(link);
  }
  const body = messageBody(m);
  if (body) bubble.appendChild(body);
  const meta = el("div", "meta");
  const time = new Date(m.date * 1000);
  meta.textContent = (m.edited ? "edited · " : "") + (m.protected ? "protected · " : "") +
    time.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  bubble.appendChild(meta);
  wrap.appendChild(bubble);
  const markup = m.reply_markup;
  if (m.from_bot && markup && markup.inline_keyboard) {
    const kb = el("div", "inline-kb");
    for (const row of markup.inline_keyboard) {
      kb.appendChild(keyboardRow(row, (button, node) => pressInline(m, button, node)));
    }
    wrap.appendChild(kb);
  }
  return wrap;
}

function renderReplyKeyboard(markup) {
  const box = $("reply-keyboard");
  box.replaceChildren();
  if (!markup || !markup.keyboard) { box.classList.add("hidden"); return; }
  for (const row of markup.keyboard) {
    box.appendChild(keyboardRow(row, (button) => {
      const text = typeof button === "string" ? button : button.text;
      api("POST", `users/${state.userId}/keyboard`, { text }).catch((e) => toast(e.message, true));
    }));
  }
  box.classList.remove("hidden");
}

async function pressInline(m, button, node) {
  if (!("callback_data" in button)) { toast("This button type is not simulated", false); return; }
  node.classList.add("pressed");
  try {
    await api("POST", `users/${state.userId}/buttons`, { message_id: m.message_id, data: button.callback_data });
  } catch (e) {
    toast(e.message, true);
  } finally {
    setTimeout(() => node.classList.remove("pressed"), 600);
  }
}

async function sendText(event) {
  event.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text || state.userId === null) return;
  input.value = "";
  try {
    await api("POST", `users/${state.userId}/messages`, { text });
  } catch (e) {
    input.value = text;
    toast(e.message, true);
  }
}

// ---------------------------------------------------------------------------------------------
// Commands menu, new users, block / deactivate

function renderCommands() {
  const box = $("commands");
  box.replaceChildren();
  const list = state.commands.length ? state.commands : [{ command: "start", description: "Start the bot" }];
  for (const c of list) {
    const item = el("button", "command");
    item.type = "button";
    item.append(el("strong", null, "/" + c.command), el("span", null, c.description));
    item.addEventListener("click", () => {
      box.classList.add("hidden");
      $("text").value = "/" + c.command;
      $("composer").requestSubmit();
    });
    box.appendChild(item);
  }
}

async function loadBot() {
  try {
    const info = await api("GET", "bot");
    $("bot-name").textContent = info.bot.first_name;
    $("bot-username").textContent = "@" + info.bot.username;
    state.commands = info.commands || [];
    renderCommands();
  } catch (e) { /* the sandbox is starting */ }
}

async function createUser(event) {
  event.preventDefault();
  const form = event.target;
  const data = Object.fromEntries(new FormData(form).entries());
  for (const key of Object.keys(data)) if (!data[key]) delete data[key];
  if (data.username) data.username = data.username.replace(/^@/, "");
  try {
    const user = await api("POST", "users", data);
    form.reset();
    form.classList.add("hidden");
    await loadUsers();
    selectUser(user.id);
  } catch (e) {
    toast(e.message, true);
  }
}

async function toggleBlock() {
  const u = currentUser();
  if (!u) return;
  try {
    await api("POST", `users/${u.id}/${u.blocked ? "unblock" : "block"}`);
    await loadUsers();
  } catch (e) { toast(e.message, true); }
}

async function deactivate() {
  const u = currentUser();
  if (!u || !confirm("Deactivate this user? The bot will get 403 for them.")) return;
  try {
    await api("POST", `users/${u.id}/deactivate`);
    await loadUsers();
  } catch (e) { toast(e.message, true); }
}

function start() {
  $("composer").addEventListener("submit", sendText);
  $("new-user-form").addEventListener("submit", createUser);
  $("new-user-toggle").addEventListener("click", () => $("new-user-form").classList.toggle("hidden"));
  $("search").addEventListener("input", renderUsers);
  $("block-btn").addEventListener("click", toggleBlock);
  $("deactivate-btn").addEventListener("click", deactivate);
  $("menu-btn").addEventListener("click", () => { loadBot(); $("commands").classList.toggle("hidden"); });
  $("back").addEventListener("click", () => document.body.classList.remove("in-chat"));
  loadBot();
  loadUsers().then(() => {
    const match = /user=(-?\d+)/.exec(location.hash);
    if (match && state.users.some((u) => u.id === Number(match[1]))) selectUser(Number(match[1]));
  });
  setInterval(loadUsers, 4000);
  setInterval(loadBot, 15000);
}

document.addEventListener("DOMContentLoaded", start);
