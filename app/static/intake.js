// Dependent selects district → street → community, and the optional map point from the device.
(function () {
  var form = document.getElementById("intake");
  if (!form) return;
  var url = form.dataset.unitsUrl;
  var district = form.querySelector("#district"), street = form.querySelector("#street"),
      community = form.querySelector("#community");
  function fill(select, parent, placeholder) {
    select.innerHTML = "";
    var first = document.createElement("option");
    first.value = ""; first.textContent = placeholder; select.appendChild(first);
    if (!parent) return Promise.resolve();
    select.disabled = true;
    return fetch(url + "?parent=" + encodeURIComponent(parent), {headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (units) {
        units.forEach(function (u) {
          var o = document.createElement("option"); o.value = u.code; o.textContent = u.name; select.appendChild(o);
        });
      })
      .finally(function () { select.disabled = false; });
  }
  district.addEventListener("change", function () {
    fill(street, district.value, "请选择街道");
    fill(community, "", "请选择社区");
  });
  street.addEventListener("change", function () { fill(community, street.value, "请选择社区"); });
  var locate = document.getElementById("locate");
  if (locate && navigator.geolocation) {
    locate.addEventListener("click", function () {
      navigator.geolocation.getCurrentPosition(function (p) {
        form.querySelector("#lat").value = p.coords.latitude.toFixed(6);
        form.querySelector("#lng").value = p.coords.longitude.toFixed(6);
      }, function () { alert("无法获取位置，可手动填写或跳过"); });
    });
  } else if (locate) { locate.hidden = true; }
  form.addEventListener("submit", function () {
    var b = form.querySelector("button[type=submit]"); b.disabled = true; b.textContent = "正在提交…";
  });
})();
