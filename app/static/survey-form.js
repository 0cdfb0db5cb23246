// Show and hide questions by their XLSForm `relevant` while the resident answers. The expression tree is
// built on the server (surveys/expressions.py, same node names); the server checks again on submit.
(function () {
  var form = document.querySelector("form.survey");
  if (!form) return;
  var questions = Array.prototype.slice.call(form.querySelectorAll(".question[data-name]"));
  var rules = questions.filter(function (q) { return q.dataset.relevant; }).map(function (q) {
    return {node: q, tree: JSON.parse(q.dataset.relevant)};
  });
  if (!rules.length) return;

  function raw(q) {
    var inputs = q.querySelectorAll("input, textarea, select"), picked = [];
    for (var i = 0; i < inputs.length; i++) {
      var el = inputs[i];
      if (el.disabled) continue;
      if (el.type === "radio" || el.type === "checkbox") { if (el.checked) picked.push(el.value); }
      else if (el.value.trim()) picked.push(el.value.trim());
    }
    return picked.join(" ");
  }
  function value(q) {
    if (q.hidden) return "";
    var text = raw(q), kind = q.dataset.kind;
    if ((kind === "number" || kind === "integer") && text !== "") {
      var n = Number(text);
      return isNaN(n) ? text : n;
    }
    return text;
  }
  function num(v) {
    if (typeof v === "boolean") return v ? 1 : 0;
    if (typeof v === "number") return v;
    return v.trim() === "" ? NaN : Number(v);
  }
  function bool(v) {
    if (typeof v === "boolean") return v;
    if (typeof v === "number") return !(v === 0 || isNaN(v));
    return v !== "";
  }
  function str(v) {
    if (typeof v === "boolean") return v ? "true" : "false";
    return String(v);
  }
  var FUNCTIONS = {
    "selected": function (s, c) { return str(s).split(/\s+/).indexOf(str(c).trim()) >= 0; },
    "count-selected": function (s) { var t = str(s).trim(); return t ? t.split(/\s+/).length : 0; },
    "not": function (v) { return !bool(v); },
    "true": function () { return true; },
    "false": function () { return false; },
    "boolean": bool, "number": num, "string": str,
    "int": function (v) { return Math.trunc(num(v)); },
    "string-length": function (v) { return str(v).length; },
    "contains": function (a, b) { return str(a).indexOf(str(b)) >= 0; },
    "starts-with": function (a, b) { return str(a).indexOf(str(b)) === 0; },
    "ends-with": function (a, b) { a = str(a); b = str(b); return a.slice(a.length - b.length) === b; },
    "concat": function () { return Array.prototype.map.call(arguments, str).join(""); },
    "coalesce": function (a, b) { return str(a) !== "" ? a : b; },
    "if": function (c, a, b) { return bool(c) ? a : b; },
    "round": function (v, p) { var f = Math.pow(10, p ? num(p) : 0); return Math.round(num(v) * f) / f; },
    "regex": function (s, p) { try { return new RegExp(str(p)).test(str(s)); } catch (e) { return true; } }
  };
  function compare(op, a, b) {
    if (op === "=" || op === "!=") {
      var eq;
      if (typeof a === "boolean" || typeof b === "boolean") eq = bool(a) === bool(b);
      else if (typeof a === "number" || typeof b === "number") eq = num(a) === num(b);
      else eq = a === b;
      return op === "=" ? eq : !eq;
    }
    var x = num(a), y = num(b);
    return op === "<" ? x < y : op === "<=" ? x <= y : op === ">" ? x > y : x >= y;
  }
  function arith(op, a, b) {
    var x = num(a), y = num(b);
    if (op === "+") return x + y;
    if (op === "-") return x - y;
    if (op === "*") return x * y;
    return op === "div" ? x / y : x % y;
  }
  function evaluate(t, values) {
    switch (t[0]) {
      case "lit": return t[1];
      case "ref": return t[1] in values ? values[t[1]] : "";
      case "cur": return "";
      case "or": return bool(evaluate(t[1], values)) || bool(evaluate(t[2], values));
      case "and": return bool(evaluate(t[1], values)) && bool(evaluate(t[2], values));
      case "neg": return -num(evaluate(t[1], values));
      case "cmp": return compare(t[1], evaluate(t[2], values), evaluate(t[3], values));
      case "arith": return arith(t[1], evaluate(t[2], values), evaluate(t[3], values));
      case "call":
        var f = FUNCTIONS[t[1]];
        return f ? f.apply(null, t.slice(2).map(function (a) { return evaluate(a, values); })) : true;
    }
    return true;
  }
  function refresh() {
    // In form order, as the server does: a hidden question counts as unanswered for the ones after it.
    var values = {};
    questions.forEach(function (q) {
      var rule = q.dataset.relevant ? JSON.parse(q.dataset.relevant) : null;
      var show = !rule || bool(evaluate(rule, values));
      q.hidden = !show;
      var inputs = q.querySelectorAll("input, textarea, select");
      for (var i = 0; i < inputs.length; i++) inputs[i].disabled = !show;
      values[q.dataset.name] = value(q);
    });
  }
  form.addEventListener("change", refresh);
  form.addEventListener("input", refresh);
  refresh();
})();
