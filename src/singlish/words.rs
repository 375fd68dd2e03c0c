//! Words and phrases as the corrector and the counter see them: whole words only, any case,
//! with the recogniser's spacing and light punctuation allowed between the words of a phrase.

use std::collections::HashMap;

/// One word of a text: a maximal run of letters, as the app defines a target word's boundaries
/// ("counted when not part of a longer word: no letter directly before or after",
/// `original-app.md`). An apostrophe, a digit or any other character ends a word, so "what's"
/// holds the word "what" and "can't" the word "can", as `score_counts.py` counts them too.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Word {
    /// Byte offsets of the word in the text it came from.
    pub start: usize,
    pub end: usize,
    /// The word lowercased.
    pub folded: String,
}

fn is_word_char(c: char) -> bool {
    c.is_alphabetic()
}

/// The words of `text`, in order.
pub(super) fn split_words(text: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut start = None;
    for (offset, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (is_word_char(c), start) {
            (true, None) => start = Some(offset),
            (false, Some(from)) => {
                words.push(Word {
                    start: from,
                    end: offset,
                    folded: fold(&text[from..offset]),
                });
                start = None;
            }
            _ => {}
        }
    }
    words
}

fn fold(word: &str) -> String {
    word.chars().flat_map(char::to_lowercase).collect()
}

/// Whether the text between two words may sit inside a phrase. The recogniser writes a spoken
/// phrase as "wah lao", "wah, lao", "wah-lao" or "wah... lao", so spaces, commas, hyphens and
/// dashes, and ellipses ("..." or "…") join; a lone full stop, `!`, `?`, quotes, brackets and
/// other marks end a sentence or a quotation, so a phrase never spans them.
fn joins_phrase(between: &str) -> bool {
    let mut dots_in_a_row = 0;
    for c in between.chars() {
        if c == '.' {
            dots_in_a_row += 1;
            continue;
        }
        if dots_in_a_row == 1 {
            return false;
        }
        dots_in_a_row = 0;
        let joiner = c.is_whitespace()
            || matches!(
                c,
                ',' | '-' | '\u{2010}' | '\u{2011}' | '\u{2013}' | '\u{2014}' | '\u{2026}'
            );
        if !joiner {
            return false;
        }
    }
    !between.is_empty() && dots_in_a_row != 1
}

/// Phrases (one or more words) with a value each, found by their first word.
#[derive(Debug, Clone)]
pub(super) struct PhraseIndex<V> {
    /// First folded word → (folded words of the phrase, value), longest phrase first.
    by_first_word: HashMap<String, Vec<(Vec<String>, V)>>,
}

impl<V> PhraseIndex<V> {
    pub fn new() -> Self {
        PhraseIndex {
            by_first_word: HashMap::new(),
        }
    }

    /// Adds `phrase`. Returns false, adding nothing, when the phrase has no words or the same
    /// words (ignoring case and punctuation) are already in the index.
    pub fn insert(&mut self, phrase: &str, value: V) -> bool {
        let folded: Vec<String> = split_words(phrase).into_iter().map(|w| w.folded).collect();
        let Some(first) = folded.first() else {
            return false;
        };
        let entries = self.by_first_word.entry(first.clone()).or_default();
        if entries.iter().any(|(words, _)| *words == folded) {
            return false;
        }
        entries.push((folded, value));
        // Stable sort: longest phrase first, insertion order among equals.
        entries.sort_by_key(|(words, _)| std::cmp::Reverse(words.len()));
        true
    }

    /// The phrases that stand in `text` starting at `words[at]`, longest first, each with its
    /// value and its length in words. `words` must be `split_words(text)`.
    pub fn matches_at<'a>(
        &'a self,
        text: &'a str,
        words: &'a [Word],
        at: usize,
    ) -> impl Iterator<Item = (&'a V, usize)> + 'a {
        let candidates = words
            .get(at)
            .and_then(|word| self.by_first_word.get(&word.folded))
            .map_or(&[][..], Vec::as_slice);
        candidates.iter().filter_map(move |(phrase, value)| {
            let stretch = words.get(at..at + phrase.len())?;
            let same_words = stretch
                .iter()
                .zip(phrase)
                .all(|(word, p)| word.folded == *p);
            let joined = stretch
                .windows(2)
                .all(|pair| joins_phrase(&text[pair[0].end..pair[1].start]));
            (same_words && joined).then_some((value, phrase.len()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(text: &str) -> Vec<String> {
        split_words(text).into_iter().map(|w| w.folded).collect()
    }

    #[test]
    fn words_are_runs_of_letters() {
        assert_eq!(folded("Walao! lah... (sia)?"), ["walao", "lah", "sia"]);
        assert_eq!(folded("lah2 go_lah 3pm"), ["lah", "go", "lah", "pm"]);
        assert_eq!(folded(""), Vec::<String>::new());
        assert_eq!(folded(" ...!? "), Vec::<String>::new());
    }

    #[test]
    fn an_apostrophe_ends_a_word() {
        // The app's rule: no letter directly before or after; an apostrophe is not a letter.
        assert_eq!(
            folded("That's what’s CAN'T"),
            ["that", "s", "what", "s", "can", "t"]
        );
        // Quotes around a word are not part of it.
        assert_eq!(folded("'shiok' 'lah"), ["shiok", "lah"]);
        assert_eq!(folded("lah'' x"), ["lah", "x"]);
    }

    #[test]
    fn offsets_point_into_the_text() {
        let text = "Ünïcode, WAH-lao";
        let words = split_words(text);
        let slices: Vec<&str> = words.iter().map(|w| &text[w.start..w.end]).collect();
        assert_eq!(slices, ["Ünïcode", "WAH", "lao"]);
        assert_eq!(words[0].folded, "ünïcode");
    }

    #[test]
    fn phrase_joiners() {
        for joiner in [" ", ", ", "-", " - ", "...", "… ", " — ", "\n", "  ,  "] {
            assert!(joins_phrase(joiner), "{joiner:?} should join");
        }
        for breaker in [". ", ".", "! ", "?", " (", "\"", ": ", "; ", "' ", " . "] {
            assert!(!joins_phrase(breaker), "{breaker:?} should break a phrase");
        }
    }

    #[test]
    fn longest_phrase_first_and_whole_words_only() {
        let mut index = PhraseIndex::new();
        assert!(index.insert("wah", 1));
        assert!(index.insert("wah lao eh", 3));
        assert!(index.insert("wah lao", 2));
        assert!(!index.insert("WAH,  lao", 9), "same words are a duplicate");
        assert!(!index.insert("...", 9), "no words");

        let text = "Wah-lao eh! wahlao wah. lao";
        let words = split_words(text);
        let at_0: Vec<(i32, usize)> = index
            .matches_at(text, &words, 0)
            .map(|(v, n)| (*v, n))
            .collect();
        assert_eq!(at_0, [(3, 3), (2, 2), (1, 1)]);
        assert_eq!(
            index.matches_at(text, &words, 3).count(),
            0,
            "wahlao is another word"
        );
        let at_4: Vec<(i32, usize)> = index
            .matches_at(text, &words, 4)
            .map(|(v, n)| (*v, n))
            .collect();
        assert_eq!(at_4, [(1, 1)], "a full stop ends the phrase");
        assert_eq!(index.matches_at(text, &words, 99).count(), 0);
    }
}
