//! Counting target words in corrected text: whole words only, any case, any punctuation around.

use std::collections::BTreeMap;

use super::builtin_target_words;
use super::words::{split_words, PhraseIndex};

/// Counts target words where they stand as whole words: no letter or digit directly before or
/// after, so "salah" holds no "lah" and "someone" no "one", while "walao! lah... sia?" holds
/// one of each. Case and punctuation around a word don't matter. A target with a space or hyphen
/// ("pom pi pi", "ah-beng") is counted as a phrase, with the same spacing and punctuation allowed
/// between its words as the [`Corrector`](super::Corrector) allows.
///
/// Each target is counted on its own: if the list held both "walao" and "walao eh", the text
/// "walao eh" would count each once. Occurrences of one target never overlap.
#[derive(Debug, Clone)]
pub struct WordCounter {
    /// The target words as given, the keys of the counts.
    targets: Vec<String>,
    /// Folded words of each target → its index in `targets`.
    index: PhraseIndex<usize>,
}

impl WordCounter {
    /// A counter for `target_words`, e.g. the active rows of the `target_words` table, in any
    /// case. Counts are reported under each word as given. A word with no letters or digits can
    /// never be counted and is skipped with a warning, as is a word that differs from an earlier
    /// one only in case or punctuation (the earlier spelling is kept).
    pub fn new(target_words: &[String]) -> Self {
        let mut targets = Vec::with_capacity(target_words.len());
        let mut index = PhraseIndex::new();
        for word in target_words {
            if index.insert(word, targets.len()) {
                targets.push(word.clone());
            } else {
                log::warn!("Target word {word:?} is empty or a duplicate and will not be counted.");
            }
        }
        WordCounter { targets, index }
    }

    /// A counter for the built-in target list.
    pub fn builtin() -> Self {
        WordCounter::new(&builtin_target_words())
    }

    /// The target words this counter counts, as given.
    pub fn target_words(&self) -> &[String] {
        &self.targets
    }

    /// Target word → number of times it stands in `corrected_text`; words not found are absent.
    pub fn count(&self, corrected_text: &str) -> BTreeMap<String, i32> {
        let words = split_words(corrected_text);
        let mut counts = vec![0i32; self.targets.len()];
        // Per target, the first word a next occurrence may start at.
        let mut free_from = vec![0usize; self.targets.len()];
        for at in 0..words.len() {
            for (&target, length) in self.index.matches_at(corrected_text, &words, at) {
                if at >= free_from[target] {
                    counts[target] = counts[target].saturating_add(1);
                    free_from[target] = at + length;
                }
            }
        }
        self.targets
            .iter()
            .zip(counts)
            .filter(|&(_, count)| count > 0)
            .map(|(word, count)| (word.clone(), count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::singlish::TARGET_WORDS;

    fn counts(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
        pairs.iter().map(|&(w, n)| (w.to_owned(), n)).collect()
    }

    fn owned(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn every_target_counts_alone_with_punctuation_and_in_any_case() {
        let counter = WordCounter::builtin();
        for &(word, _) in TARGET_WORDS {
            let capitalised = format!("{}{}", word[..1].to_uppercase(), &word[1..]);
            let texts = [
                word.to_owned(),
                format!("{word}!"),
                format!("\"{word}\","),
                format!("({word})"),
                format!("...{word}?"),
                format!("'{word}'"),
                format!("-{word}-"),
                word.to_uppercase(),
                capitalised.clone(),
                format!("ok {capitalised}. Then"),
            ];
            for text in texts {
                assert_eq!(counter.count(&text), counts(&[(word, 1)]), "{text:?}");
            }
            let three = format!("{word} {}, {}!", word.to_uppercase(), capitalised);
            assert_eq!(counter.count(&three), counts(&[(word, 3)]), "{three:?}");
        }
    }

    #[test]
    fn no_target_counts_inside_a_longer_word() {
        let counter = WordCounter::builtin();
        for &(word, _) in TARGET_WORDS {
            for glued in [
                format!("x{word}"),
                format!("{word}x"),
                format!("{word}s"),
                format!("é{word}"),
            ] {
                assert_eq!(counter.count(&glued), counts(&[]), "{glued:?}");
            }
        }
    }

    #[test]
    fn english_words_that_contain_targets_count_nothing() {
        let counter = WordCounter::builtin();
        for text in [
            "salah", "malaysia", "canned", "ahead", "teacher", "powerful", "someone", "money",
            "whatever", "cannots", "blurry", "mama", "tehran", "penguin", "horse", "lahore",
            "kopitiam", "arrows", "steadyy", "liaoning", "chopes",
        ] {
            assert_eq!(counter.count(text), counts(&[]), "{text}");
        }
        assert_eq!(counter.count("power vs powerful"), counts(&[("power", 1)]));
        assert_eq!(counter.count("one vs someone money"), counts(&[("one", 1)]));
        assert_eq!(
            counter.count("can cannot canned"),
            counts(&[("can", 1), ("cannot", 1)])
        );
    }

    #[test]
    fn a_target_word_ends_where_a_letter_does_not_follow() {
        // original-app.md: counted when there is no letter directly before or after, so an
        // apostrophe or a digit ends the word.
        let counter = WordCounter::builtin();
        assert_eq!(
            counter.count("What's that? You can't lah2"),
            counts(&[("what", 1), ("can", 1), ("lah", 1)])
        );
    }

    #[test]
    fn database_words_in_any_case_keep_their_spelling_as_keys() {
        let counter = WordCounter::new(&owned(&["LAH", "Walao", "lah", " sia ", "", "?!"]));
        assert_eq!(counter.target_words(), owned(&["LAH", "Walao", " sia "]));
        assert_eq!(
            counter.count("lah Lah walao sia"),
            counts(&[("LAH", 2), ("Walao", 1), (" sia ", 1)])
        );
    }

    #[test]
    fn multi_word_targets_count_as_phrases() {
        let counter = WordCounter::new(&owned(&["walao eh", "eh", "ah-beng", "lah lah"]));
        assert_eq!(
            counter.count("Walao, eh! Eh ah beng AH-BENG ahbeng"),
            counts(&[("ah-beng", 2), ("eh", 2), ("walao eh", 1)])
        );
        assert_eq!(counter.count("walao. eh"), counts(&[("eh", 1)]));
        assert_eq!(
            counter.count("lah lah lah"),
            counts(&[("lah lah", 1)]),
            "no overlap"
        );
        assert_eq!(counter.count("lah lah lah lah"), counts(&[("lah lah", 2)]));
    }

    #[test]
    fn an_empty_list_counts_nothing() {
        let counter = WordCounter::new(&[]);
        assert_eq!(counter.count("walao lah"), counts(&[]));
    }
}
