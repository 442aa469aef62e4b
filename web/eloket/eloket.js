// eloket.js: the one piece of JavaScript of the e-loket, and an optional one: a search
// box above the product list that hides the products whose name and keywords (the
// catalogue's, in data-keywords) do not hold every word typed, and the theme groups left
// empty. Without JavaScript the box stays hidden and the whole list shows.
const box = document.querySelector("[data-product-search]");
const input = document.getElementById("product-search");
const count = document.getElementById("product-search-count");
const nl = document.documentElement.lang !== "en";

function fold(s) {
  return s.toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "");
}

function filter() {
  const words = fold(input.value).split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const option of document.querySelectorAll(".product-option")) {
    const text = fold(option.dataset.keywords || "");
    const radio = option.querySelector("input");
    // A chosen product stays in sight, so the choice is never hidden from its owner.
    const match = words.every((w) => text.includes(w)) || (radio && radio.checked);
    option.hidden = !match;
    if (match) shown++;
  }
  for (const group of document.querySelectorAll(".product-group")) {
    group.hidden = !group.querySelector(".product-option:not([hidden])");
  }
  if (words.length === 0) count.textContent = "";
  else if (nl) count.textContent = shown === 1 ? "1 onderwerp gevonden" : `${shown} onderwerpen gevonden`;
  else count.textContent = shown === 1 ? "1 topic found" : `${shown} topics found`;
}

if (box && input && count) {
  box.hidden = false;
  input.addEventListener("input", filter);
  // Enter in the search box must not send the form half filled in.
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") e.preventDefault(); });
}

// After an error the summary takes the focus, so a screen reader reads it first.
const summary = document.getElementById("error-summary");
if (summary) summary.focus();
