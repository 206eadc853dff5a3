/* The dialogue browser of the dialforge report: filters and shows the dialogues embedded as JSON.
   Every string from the data goes in with textContent, never as markup. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dialogues-data").textContent);
  var LIMIT = 500;
  var CUT = 4000;  // characters of one value shown at first: a page with a value of megabytes would hang
  var PREVIEW = 160;  // characters of the first user message in the list
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  /* The value as a `tag` element, cut to CUT characters with a button that shows all of it (and cuts it again). */
  function long(tag, cls, text) {
    text = String(text);
    var node = el(tag, cls, text.length > CUT ? text.slice(0, CUT) + "…" : text);
    if (text.length <= CUT) return node;
    var wrap = el("div", "long");
    var more = el("button", "more");
    var cut = true;
    function label() {
      more.textContent = cut ? "show all " + text.length.toLocaleString("en") + " characters"
        : "show the first " + CUT.toLocaleString("en") + " characters";
    }
    more.type = "button";
    label();
    more.addEventListener("click", function () {
      cut = !cut;
      node.textContent = cut ? text.slice(0, CUT) + "…" : text;
      label();
    });
    wrap.appendChild(node);
    wrap.appendChild(more);
    return wrap;
  }
  function firstUserMessage(d) {
    for (var i = 0; i < d.messages.length; i++) {
      var m = d.messages[i];
      if (m.role === "user" && typeof m.content === "string") return m.content;
    }
    return "";
  }
  data.forEach(function (d) {
    var first = firstUserMessage(d);
    d.preview = first.length > PREVIEW ? first.slice(0, PREVIEW) + "…" : first;
  });
  function pretty(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return String(text); }
  }
  var filters = {
    domain: function (d) { return [d.domain]; },
    mode: function (d) { return [d.mode]; },
    verdict: function (d) { return [d.verdict]; },
    status: function (d) { return [d.status]; },
    tool: function (d) { return d.tools_used; }
  };
  Object.keys(filters).forEach(function (name) {
    var select = document.getElementById("f-" + name);
    var seen = {};
    data.forEach(function (d) { filters[name](d).forEach(function (v) { seen[v] = (seen[v] || 0) + 1; }); });
    var all = el("option", null, "all");
    all.value = "";
    select.appendChild(all);
    Object.keys(seen).sort().forEach(function (v) {
      var option = el("option", null, v + " (" + seen[v] + ")");
      option.value = v;
      select.appendChild(option);
    });
    select.addEventListener("change", update);
  });
  var search = document.getElementById("f-text");
  search.addEventListener("input", update);
  var list = document.getElementById("dialogue-list");
  var view = document.getElementById("dialogue-view");
  var selected = null;

  function matches(d) {
    var ok = Object.keys(filters).every(function (name) {
      var want = document.getElementById("f-" + name).value;
      return !want || filters[name](d).indexOf(want) >= 0;
    });
    var needle = search.value.trim().toLowerCase();
    if (ok && needle) {
      ok = d.id.toLowerCase().indexOf(needle) >= 0 || d.messages.some(function (m) {
        return typeof m.content === "string" && m.content.toLowerCase().indexOf(needle) >= 0;
      });
    }
    return ok;
  }
  function update() {
    var shown = data.filter(matches);
    list.textContent = "";
    shown.slice(0, LIMIT).forEach(function (d) {
      var item = el("li");
      item.dataset.id = d.id;
      item.appendChild(el("div", "title", d.id));
      if (d.preview) item.appendChild(el("div", "preview", d.preview));
      var meta = el("div", "meta", d.mode + " · " + d.domain + " · " + (d.stats.turns || 0) + " turns");
      meta.appendChild(el("span", "badge " + d.verdict, d.verdict));
      if (d.status === "failed") meta.appendChild(el("span", "badge failed", "failed"));
      if (d.truncated) meta.appendChild(el("span", "badge failed", "truncated"));
      item.appendChild(meta);
      if (selected === d.id) item.classList.add("sel");
      item.addEventListener("click", function () { show(d); });
      list.appendChild(item);
    });
    var count = shown.length + " of " + data.length + " dialogues";
    if (shown.length > LIMIT) count += " (first " + LIMIT + " listed; filter to narrow)";
    document.getElementById("count").textContent = count;
    document.body.dataset.shown = String(shown.length);
  }
  function section(title) {
    var box = el("div", "box");
    box.appendChild(el("h3", null, title));
    return box;
  }
  function message(m) {
    var cls = m.role, who = m.role;
    if (m.role === "tool") {
      who = "tool result · " + m.name;
      if (typeof m.content === "string" && m.content.indexOf('{"error"') === 0) cls += " error";
    }
    var box = el("div", "msg " + cls);
    box.appendChild(el("div", "who", who));
    if (m.role === "system") {
      var fold = el("details");
      fold.appendChild(el("summary", null, "system prompt"));
      fold.appendChild(long("pre", null, m.content));
      box.appendChild(fold);
      return box;
    }
    if (m.reasoning) {
      var thought = el("details");
      thought.appendChild(el("summary", null, "reasoning"));
      thought.appendChild(long("pre", null, m.reasoning));
      box.appendChild(thought);
    }
    if (m.role === "tool") box.appendChild(long("pre", null, pretty(m.content)));
    else if (m.content) box.appendChild(long("div", "text", m.content));
    (m.tool_calls || []).forEach(function (call) {
      var c = el("div", "call");
      c.appendChild(el("div", "who", "tool call · " + call["function"].name + " · " + call.id));
      c.appendChild(long("pre", null, pretty(call["function"].arguments)));
      box.appendChild(c);
    });
    return box;
  }
  function show(d) {
    selected = d.id;
    Array.prototype.forEach.call(list.children, function (li) { li.classList.toggle("sel", li.dataset.id === d.id); });
    view.textContent = "";
    var head = el("div", "box");
    head.appendChild(el("h3", null, d.id));
    var facts = [d.mode, d.domain, "status " + d.status, "verdict " + d.verdict,
      (d.stats.turns || 0) + " turns", (d.stats.steps || 0) + " steps", (d.stats.tasks_completed || 0) + " of " + (d.stats.tasks_assigned || 0) + " goals done",
      (d.stats.tool_calls || 0) + " tool calls", (d.stats.tool_errors || 0) + " tool errors"];
    if (d.persona) facts.push("persona " + d.persona);
    head.appendChild(el("div", "meta", facts.join(" · ")));
    if (d.failure) head.appendChild(long("div", "fail", (d.truncated ? "truncated: " : "failure: ") + d.failure));
    var guards = Object.keys(d.guards);
    if (guards.length) head.appendChild(el("div", "meta", "guards: " + guards.map(function (g) {
      return g + " ×" + d.guards[g]; }).join(", ")));
    view.appendChild(head);
    if (d.tasks.length) {
      var tasks = section("Tasks");
      var ol = el("ol");
      d.tasks.forEach(function (t) {
        var li = el("li");
        li.appendChild(long("div", null, t.description));
        var extra = [];
        if (t.difficulty) extra.push("difficulty " + t.difficulty);
        if (t.tools && t.tools.length) extra.push("tools " + t.tools.join(", "));
        if (t.continuation) extra.push("continuation: " + t.continuation.how + (t.continuation.why ? " (" + t.continuation.why + ")" : ""));
        if (extra.length) li.appendChild(el("div", "meta", extra.join(" · ")));
        if (t.subtasks && t.subtasks.length) {
          var ul = el("ul");
          t.subtasks.forEach(function (s) { ul.appendChild(el("li")).appendChild(long("div", null, s)); });
          li.appendChild(ul);
        }
        ol.appendChild(li);
      });
      tasks.appendChild(ol);
      view.appendChild(tasks);
    }
    if (d.tasks_dropped.length) {
      var dropped = section("Goals dropped by the truncation (not in the conversation, not judged)");
      var dl = el("ol");
      d.tasks_dropped.forEach(function (t) { dl.appendChild(el("li")).appendChild(long("div", null, t.description)); });
      dropped.appendChild(dl);
      view.appendChild(dropped);
    }
    var chat = section("Conversation");
    var system = d.messages.length && d.messages[0].role === "system" ? 1 : 0;
    d.messages.forEach(function (m, i) {
      if (d.prefix_messages && i === system) chat.appendChild(el("div", "hint", "the continued conversation, as given (" + d.prefix_messages + " messages):"));
      if (d.prefix_messages && i === system + d.prefix_messages) chat.appendChild(el("div", "hint", "generated from here on:"));
      chat.appendChild(message(m));
    });
    view.appendChild(chat);
    var j = d.judgment;
    var judge = section("Judge");
    if (!j) judge.appendChild(el("div", "hint", "not judged"));
    else {
      judge.appendChild(el("div", j.judgment === "valid" ? "pass" : "fail", j.judgment));
      judge.appendChild(long("div", "text", j.reasoning));
      if (j.items && j.items.length) {
        var items = el("ul");
        j.items.forEach(function (it) {
          var graded = it.category !== "InvalidRubric";
          items.appendChild(el("li", graded ? (it.passed ? "pass" : "fail") : "hint",
            (graded ? (it.passed ? "✓ " : "✗ ") : "– ") + "[" + it.category + "] " + it.item));
        });
        judge.appendChild(items);
      }
      var checks = Object.keys(j.checks || {});
      if (checks.length) {
        var cl = el("ul");
        checks.forEach(function (c) {
          cl.appendChild(el("li", j.checks[c] ? "pass" : "fail", (j.checks[c] ? "✓ " : "✗ ") + c));
        });
        judge.appendChild(el("div", "meta", "SQL checks"));
        judge.appendChild(cl);
      }
      if (j.verification) {
        var ver = el("details");
        ver.appendChild(el("summary", null, "verification"));
        ver.appendChild(long("pre", null, JSON.stringify(j.verification, null, 2)));
        judge.appendChild(ver);
      }
    }
    view.appendChild(judge);
    var usage = el("details", "box");
    usage.appendChild(el("summary", null, "usage and tools offered"));
    usage.appendChild(el("pre", null, JSON.stringify(d.usage, null, 2)));
    usage.appendChild(el("div", "meta", "tools offered: " + d.tools_offered.join(", ")));
    view.appendChild(usage);
  }
  update();
  if (data.length) show(data.filter(matches)[0] || data[0]);
  window.dialforgeReport = {data: data, update: update, show: function (id) {
    var d = data.filter(function (x) { return x.id === id; })[0];
    if (d) show(d);
    return !!d;
  }};
})();
