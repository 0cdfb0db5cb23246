// Intake form: dependent selects district → street → community, the map picker with the suggested
// community, known addresses, photo previews, possible duplicates shown before submitting, and a
// draft kept in the tab until the request is accepted.
(function () {
  var form = document.getElementById("intake");
  if (!form) return;
  var url = form.dataset.unitsUrl;
  var district = form.querySelector("#district"), street = form.querySelector("#street"),
      community = form.querySelector("#community");
  var lat = form.querySelector("#lat"), lng = form.querySelector("#lng");
  function getJSON(u) {
    return fetch(u, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; });
  }
  function fill(select, parent, placeholder) {
    select.innerHTML = "";
    var first = document.createElement("option");
    first.value = ""; first.textContent = placeholder; select.appendChild(first);
    if (!parent) return Promise.resolve();
    select.disabled = true;
    return getJSON(url + "?parent=" + encodeURIComponent(parent))
      .then(function (units) {
        (units || []).forEach(function (u) {
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

  // Known addresses of the chosen community (a datalist: the resident may still type anything).
  var address = form.querySelector("#address"), known = document.getElementById("known-addresses");
  if (address && known) {
    address.setAttribute("list", "known-addresses");
    var loadAddresses = function () {
      known.innerHTML = "";
      if (!community.value) return;
      getJSON(form.dataset.addressesUrl + "?community=" + encodeURIComponent(community.value)).then(function (list) {
        (list || []).forEach(function (a) { var o = document.createElement("option"); o.value = a; known.appendChild(o); });
      });
    };
    community.addEventListener("change", loadAddresses);
    loadAddresses();
  }

  // Place the selects on a suggested community (district and street lists are loaded first).
  var suggestion = document.getElementById("place-suggestion");
  function choose(place) {
    district.value = place.district;
    return fill(street, place.district, "请选择街道").then(function () {
      street.value = place.street;
      return fill(community, place.street, "请选择社区");
    }).then(function () {
      community.value = place.community;
      community.dispatchEvent(new Event("change"));
    });
  }
  function suggest() {
    if (!lat.value || !lng.value || !suggestion) return;
    getJSON(form.dataset.suggestUrl + "?lat=" + encodeURIComponent(lat.value) + "&lng=" + encodeURIComponent(lng.value))
      .then(function (place) {
        if (!place || !place.community) { suggestion.textContent = "未能根据位置确定社区，请手动选择"; return; }
        suggestion.textContent = "根据地图位置，推荐社区：" + place.community_name;
        if (community.value !== place.community) choose(place);
      });
  }

  // Map picker (Leaflet, vendored). Without a tile URL the map is a plain canvas that still takes a tap.
  var picker = document.getElementById("map-picker");
  if (picker && window.L) {
    picker.hidden = false;
    var hint = document.getElementById("map-hint"); if (hint) hint.hidden = false;
    var start = [parseFloat(lat.value || picker.dataset.lat), parseFloat(lng.value || picker.dataset.lng)];
    var map = L.map(picker, {attributionControl: !!picker.dataset.tiles}).setView(start, 14);
    if (picker.dataset.tiles) L.tileLayer(picker.dataset.tiles, {maxZoom: 19}).addTo(map);
    L.Icon.Default.imagePath = picker.ownerDocument.querySelector("link[href*='leaflet.css']").href.replace(/leaflet\.css.*$/, "images/");
    var marker = null;
    var place = function (latlng) {
      if (marker) marker.setLatLng(latlng); else marker = L.marker(latlng).addTo(map);
    };
    if (lat.value && lng.value) place(start);
    map.on("click", function (e) {
      place(e.latlng);
      lat.value = e.latlng.lat.toFixed(6); lng.value = e.latlng.lng.toFixed(6);
      suggest();
    });
    [lat, lng].forEach(function (input) {
      input.addEventListener("change", function () {
        var p = [parseFloat(lat.value), parseFloat(lng.value)];
        if (!isNaN(p[0]) && !isNaN(p[1])) { place(p); map.setView(p); suggest(); }
      });
    });
  }
  var locate = document.getElementById("locate");
  if (locate && navigator.geolocation) {
    locate.addEventListener("click", function () {
      navigator.geolocation.getCurrentPosition(function (p) {
        lat.value = p.coords.latitude.toFixed(6);
        lng.value = p.coords.longitude.toFixed(6);
        lat.dispatchEvent(new Event("change"));
      }, function () { alert("无法获取位置，可手动填写或跳过"); });
    });
  } else if (locate) { locate.hidden = true; }

  // Photo previews, and the count checked before the upload starts.
  var photos = form.querySelector("#photos"), previews = document.getElementById("photo-previews");
  var maxPhotos = parseInt(form.dataset.maxPhotos || "6", 10);
  if (photos && previews) {
    photos.addEventListener("change", function () {
      previews.innerHTML = "";
      photos.setCustomValidity(photos.files.length > maxPhotos ? "最多上传 " + maxPhotos + " 张照片" : "");
      Array.prototype.slice.call(photos.files, 0, maxPhotos).forEach(function (file) {
        var li = document.createElement("li");
        if (/^image\/(jpeg|png)$/.test(file.type)) {
          // A data: URL, not blob:, which the CSP's img-src does not allow.
          var img = document.createElement("img"); img.alt = file.name; li.appendChild(img);
          var reader = new FileReader();
          reader.onload = function () { img.src = reader.result; };
          reader.readAsDataURL(file);
        } else { li.textContent = file.name; }
        previews.appendChild(li);
      });
    });
  }

  // Possible duplicates: asked for once before submitting; the resident then follows one or submits.
  var seen = form.querySelector("#duplicates_seen"), box = document.getElementById("duplicates"),
      list = document.getElementById("duplicate-list"), meToo = document.getElementById("me-too-forms");
  function showDuplicates(items) {
    list.innerHTML = "";
    items.forEach(function (d) {
      var li = document.createElement("li");
      var strong = document.createElement("strong"); strong.className = "tracking"; strong.textContent = d.tracking_number;
      var state = document.createElement("span"); state.className = "state state-" + d.state; state.textContent = d.state_label;
      var text = document.createElement("span"); text.className = "snippet"; text.textContent = d.snippet;
      var count = document.createElement("small"); count.textContent = d.me_too_count + " 人也遇到了";
      var f = document.createElement("form"); f.method = "post";
      f.action = meToo.dataset.action.replace("TRACKING", encodeURIComponent(d.tracking_number));
      var csrf = document.createElement("input"); csrf.type = "hidden"; csrf.name = "csrf_token"; csrf.value = meToo.dataset.csrf;
      var b = document.createElement("button"); b.type = "submit"; b.className = "secondary"; b.textContent = "我也遇到了，关注此诉求";
      f.appendChild(csrf); f.appendChild(b);
      [strong, state, text, count, f].forEach(function (el) { li.appendChild(el); });
      list.appendChild(li);
    });
    box.hidden = false;
  }
  // With JS the hint follows what is typed and never blocks submitting; the server shows it only to
  // browsers without JS (duplicates_seen stays empty there).
  if (seen) seen.value = "1";
  var timer = null, asked = "";
  function checkDuplicates() {
    var desc = form.querySelector("#description").value, cat = form.querySelector("#category").value;
    if (!cat || !community.value || desc.trim().length < 5 || !form.dataset.duplicatesUrl) { box.hidden = true; return; }
    var q = "?category=" + encodeURIComponent(cat) + "&community=" + encodeURIComponent(community.value) +
            "&description=" + encodeURIComponent(desc);
    if (q === asked) return;
    asked = q;
    getJSON(form.dataset.duplicatesUrl + q).then(function (answer) {
      var items = (answer && answer.possible_duplicates) || [];
      if (items.length) showDuplicates(items); else box.hidden = true;
    });
  }
  function later() { clearTimeout(timer); timer = setTimeout(checkDuplicates, 600); }
  form.querySelector("#description").addEventListener("input", later);
  form.querySelector("#category").addEventListener("change", later);
  community.addEventListener("change", later);
  if (box && !box.hidden) { /* the server already showed the hint */ } else { later(); }

  // A draft of what was typed, kept in this tab (sessionStorage: gone when the tab closes) until the
  // request is accepted, so a lost session or an expired page (CSRF) does not lose the request.
  var draftKey = "minhu-draft:" + location.pathname;
  var DRAFTED = ["category", "description", "address", "lat", "lng", "contact_name", "contact_phone"];
  function saveDraft() {
    var draft = {district: district.value, street: street.value, community: community.value};
    DRAFTED.forEach(function (name) { var el = form.elements[name]; if (el) draft[name] = el.value; });
    ["anonymous", "sms_opt_in"].forEach(function (name) { var el = form.elements[name]; if (el) draft[name] = el.checked; });
    try { sessionStorage.setItem(draftKey, JSON.stringify(draft)); } catch (e) { /* storage full or off */ }
  }
  function restoreDraft() {
    var raw = null;
    try { raw = sessionStorage.getItem(draftKey); } catch (e) { return; }
    var description = form.elements.description;
    if (!raw || (description && description.value.trim())) return;  // the server kept what was typed
    var draft = JSON.parse(raw);
    DRAFTED.forEach(function (name) { var el = form.elements[name]; if (el && draft[name]) el.value = draft[name]; });
    ["anonymous", "sms_opt_in"].forEach(function (name) { var el = form.elements[name]; if (el) el.checked = !!draft[name]; });
    if (draft.district && draft.street && draft.community) choose(draft);
    var note = document.getElementById("draft-restored");
    if (note) note.hidden = false;
  }
  var discard = document.getElementById("draft-discard");
  if (discard) discard.addEventListener("click", function () {
    try { sessionStorage.removeItem(draftKey); } catch (e) { /* nothing kept */ }
    location.replace(location.pathname);
  });
  restoreDraft();
  form.addEventListener("input", saveDraft);
  form.addEventListener("change", saveDraft);

  form.addEventListener("submit", function (event) {
    if (photos && photos.files.length > maxPhotos) { event.preventDefault(); photos.reportValidity(); return; }
    saveDraft();
    var b = form.querySelector("button[type=submit]"); b.disabled = true; b.textContent = "正在提交…";
  });
})();
