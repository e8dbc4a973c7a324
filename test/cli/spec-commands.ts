// The spec's command lines, pulled out of its text the way a shell would split them: every
// `npx claude-flow@alpha ...` invocation (continuation lines, quotes spanning lines, commands
// inside the hook's JavaScript strings). The CLI must parse each one.

const PREFIX = 'npx claude-flow@alpha ';

/** Argument vectors (after the program name) of every spec command in `text`. */
export function specCommands(text: string): string[][] {
  const out: string[][] = [];
  let at = text.indexOf(PREFIX);
  while (at >= 0) {
    const opener = text[at - 1];
    // Inside a JS string ('...' or `...`): the command ends at the closing quote.
    const end = opener === "'" || opener === '`' ? text.indexOf(opener, at) : -1;
    out.push(shellWords(text.slice(at + PREFIX.length, end >= 0 ? end : undefined)));
    at = text.indexOf(PREFIX, at + PREFIX.length);
  }
  return out;
}

/** Shell-like splitting up to the end of the command (an unescaped newline outside quotes). */
function shellWords(s: string): string[] {
  const words: string[] = [];
  let cur = '';
  let has = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && s[i + 1] === '\n') {
      i++;
      continue;
    }
    if (c === '\n' || c === '#') break;
    if (c === ' ' || c === '\t') {
      if (has) words.push(cur);
      cur = '';
      has = false;
      continue;
    }
    if (c === "'" || c === '"') {
      const close = s.indexOf(c, i + 1);
      cur += s.slice(i + 1, close);
      has = true;
      i = close;
      continue;
    }
    cur += c;
    has = true;
  }
  if (has) words.push(cur);
  return words;
}
