// The draft page's file picker: a Chinese button, and the chosen file's name beside it
// (the browser's own picker speaks the browser's language).
document.querySelectorAll("[data-file-picker]").forEach((label) => {
  const input = label.querySelector("input[type=file]");
  const name = label.parentElement.querySelector("[data-file-name]");
  if (!input || !name) return;
  input.addEventListener("change", () => {
    name.textContent = input.files.length ? input.files[0].name : "未选择文件";
  });
});
