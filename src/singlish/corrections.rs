//! How the recogniser spells Singlish words, and the [`Corrector`] that puts the app's spelling
//! back: whole words and whole phrases only, any case, each piece of text replaced at most once.
//! A spelling that may be ordinary English ("lunch hour", "see ya", "chop", "low") is only a
//! [`Candidate`] that needs evidence: the speech pipeline has the decoder score both spellings
//! on the audio and keeps the likelier (see `inference::whisper::transcribe`).

use super::particles::{elongated_particle, soundalike_at_clause_end};
use super::words::{split_words, PhraseIndex};
use super::TARGET_WORDS;

/// Phrase corrections from the original app: target word ← the recogniser's spellings of it.
///
/// The reference also lists "wah lao eh" and "wa lao eh" as spellings of walao, while the
/// original's own test expects "wa lao eh" → "walao eh". We keep the "eh": the speaker said the
/// exclamation "eh" (itself a target word), and a recognised "walao eh" counts it too, so the
/// counts must not depend on how the recogniser spelt "walao". Those two spellings are therefore
/// not entries here: "wah lao" / "wa lao" already turn them into "walao eh".
#[rustfmt::skip] // Laid out like the reference, one target word a line.
pub const PHRASE_CORRECTIONS: &[(&str, &[&str])] = &[
    (
        "walao",
        &[
            "while up", "wah lao", "wa lao", "wah low", "wa low", "while ah", "wah lau", "wa lau",
            "wah liao", "wa liao", "while low", "wah lei", "why lao", "why low", "wah la",
        ],
    ),
    (
        "cheebai",
        &[
            "cheap buy", "chee bye", "chi bye", "chee bai", "chi bai", "chee by", "chi by", "cb",
            "c b", "see bee",
        ],
    ),
    (
        "lanjiao",
        &[
            "lunch hour", "lan jiao", "lan chow", "lan chiao", "lun jiao", "lan chio", "lunchow",
            "lan jio",
        ],
    ),
    ("kanina", &["can nina", "kar ni na", "ka ni na", "car nina", "knn", "k n n"]),
    ("nabei", &["nah bay", "na bei", "nah bei", "na beh", "nah beh"]),
    ("paiseh", &["pie say", "pai seh", "pie seh", "pai say", "pie se", "pai se", "paise"]),
    ("shiok", &["shook", "she ok", "shoe ok", "shi ok"]),
    ("alamak", &["ala mak", "allah mak", "a la mak", "allamak", "aller mak"]),
    ("aiyo", &["ai yo", "ai yoh", "eye yo", "aye yo"]),
    ("aiyah", &["aiya", "ai ya", "ai yah", "eye yah"]),
    ("jialat", &["jia lat", "gia lat", "jia lut", "jee ah lat", "gia lut"]),
    ("bojio", &["bo jio", "boh jio", "bo gio", "never jio", "boh gio"]),
    ("sia", &["see ya", "see ah", "siah", "si ah"]),
    ("sian", &["see an", "si an", "see en", "si en"]),
    ("kiasu", &["kia su", "key ah su"]),
    ("kiasi", &["kia si", "key ah si"]),
    ("bodoh", &["boh doh", "bo doh"]),
    ("suaku", &["sua ku", "swah ku"]),
    ("lepak", &["le pak", "lay pak"]),
    ("chope", &["chop"]),
    ("makan", &["ma kan"]),
    ("gostan", &["go stan", "go stun"]),
    ("sibei", &["si bei", "see bay", "si bay"]),
    ("atas", &["ah tas", "ar tas"]),
    ("kaypoh", &["kay poh", "kae poh", "kaypo", "kpo"]),
    ("steady", &["steady pom pi pi"]),
    ("goondu", &["goon du", "gun du"]),
];

/// Single-word corrections from the original app: target word ← spellings, whole words only.
/// "leh" and "huh" are target words as they stand and are left alone. Added to the original's:
/// "lar" (how Whisper writes a British-sounding "lah", and a common written spelling of it) and
/// "waa" (for "wah"); neither is an English word.
#[rustfmt::skip] // Laid out like the reference, one target word a line.
pub const WORD_CORRECTIONS: &[(&str, &[&str])] = &[
    ("lah", &["la", "laa", "laaa", "ler", "lar"]),
    ("wah", &["waa"]),
    ("lor", &["low", "loh"]),
    ("sia", &["seh"]),
    ("meh", &["mah"]),
    ("ah", &["arh"]),
    ("eh", &["err"]),
    ("shiok", &["shio"]),
];

/// Spellings in the tables that ordinary English may contain: their words are English words
/// (each is in Debian's `wamerican` list, checked by `tests/singlish_examples.rs`, but for the
/// colloquial "ya") and together they read as English ("lunch hour", "see ya", "can Nina",
/// "chop", "low"). Said in plain English they must not become target words, vulgar ones above
/// all, so they become their target word only when the audio supports it; and a target word
/// the recogniser wrote where one of them fits is weighed against it. Spellings of English
/// words that read as no English ("eye yo", "go stun") are left out: there the recogniser
/// spelt the Singlish sounds.
#[rustfmt::skip]
pub const ENGLISH_LOOKALIKES: &[&str] = &[
    "while up", "why low", "cheap buy", "cb", "c b", "lunch hour", "can nina", "pie say",
    "shook", "she ok", "see an", "chop", "see bay", "low", "err", "see ya",
];

/// A stretch of text that may read otherwise: the byte range, the readings to weigh against
/// it (best first), and whether the audio must decide. A recogniser spelling of a target word
/// has the target word as its one reading; it needs evidence when the spelling may be ordinary
/// English. A target word that some English phrase resembles ("sia" and "see ya") has those
/// phrases as readings, always with evidence: the decoder may have written the target word
/// because the prompt led it there.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub range: std::ops::Range<usize>,
    pub readings: Vec<&'static str>,
    pub needs_evidence: bool,
}

impl Candidate {
    /// The target word this candidate's text becomes when its first reading is taken, if the
    /// reading is a target word (a recogniser spelling), else `None`.
    pub fn target(&self) -> Option<&'static str> {
        self.readings
            .first()
            .copied()
            .filter(|r| TARGET_WORDS.iter().any(|&(w, _)| w == *r))
    }
}

/// Rewrites the recogniser's spellings of Singlish words as the app's words.
///
/// Phrases and single words are matched as whole words (no letter or digit directly before or
/// after; "chopped" is not "chop"), in any case, with spaces, commas, hyphens or ellipses between
/// the words of a phrase ("Wah, lao", "wah-lao"). Text is scanned once from the left; where
/// spellings overlap the one starting first wins, and among those starting at the same word the
/// longest. A replacement is the lowercase target word and is never corrected again ("la la" →
/// "lah lah", "paiseh lah" stays). Everything else keeps its case and punctuation.
///
/// Phrase corrections take precedence over single-word ones as in the original: a single word can
/// only lose to a phrase that starts at or before it and covers it ("wah low" → "walao", while a
/// lone "low" → "lor"), and the tables share no spelling, so the order between them never matters
/// otherwise.
#[derive(Debug, Clone)]
pub struct Corrector {
    /// Spelling → (target word, may be ordinary English).
    spellings: PhraseIndex<(&'static str, bool)>,
    /// Target word → the English lookalikes among its spellings.
    lookalikes: PhraseIndex<Vec<&'static str>>,
}

impl Corrector {
    /// The corrector for the original app's correction tables.
    pub fn new() -> Self {
        let mut spellings = PhraseIndex::new();
        let mut lookalikes = PhraseIndex::new();
        for &(word, variants) in PHRASE_CORRECTIONS.iter().chain(WORD_CORRECTIONS) {
            let english: Vec<&'static str> = variants
                .iter()
                .copied()
                .filter(|v| ENGLISH_LOOKALIKES.contains(v))
                .collect();
            if !english.is_empty() {
                lookalikes.insert(word, english);
            }
            for variant in variants {
                let added = spellings.insert(variant, (word, ENGLISH_LOOKALIKES.contains(variant)));
                debug_assert!(
                    added,
                    "spelling {variant:?} is listed twice or has no words"
                );
            }
        }
        Corrector {
            spellings,
            lookalikes,
        }
    }

    /// `text` with every recognised spelling replaced by its target word, evidence or not.
    pub fn correct(&self, text: &str) -> String {
        let spellings: Vec<Candidate> = self
            .candidates(text)
            .into_iter()
            .filter(|c| c.target().is_some())
            .collect();
        apply(text, &spellings)
    }

    /// The recogniser spellings and the English-looking target words in `text`, left to right,
    /// without overlaps (see [`Candidate`]); a word no table spells is still a particle when it
    /// is one stretched ("laaaa") or, at a clause end, one's English soundalike ("lunch law").
    pub fn candidates(&self, text: &str) -> Vec<Candidate> {
        let words = split_words(text);
        let mut found = Vec::new();
        let mut at = 0;
        while at < words.len() {
            if let Some((&(target, needs_evidence), length)) =
                self.spellings.matches_at(text, &words, at).next()
            {
                found.push(Candidate {
                    range: words[at].start..words[at + length - 1].end,
                    readings: vec![target],
                    needs_evidence,
                });
                at += length;
            } else if let Some(particle) = elongated_particle(&words[at].folded)
                .or_else(|| soundalike_at_clause_end(text, &words, at))
            {
                // A particle by its spelling or its place (see `particles`).
                found.push(Candidate {
                    range: words[at].start..words[at].end,
                    readings: vec![particle],
                    needs_evidence: false,
                });
                at += 1;
            } else if let Some((english, length)) =
                self.lookalikes.matches_at(text, &words, at).next()
            {
                found.push(Candidate {
                    range: words[at].start..words[at + length - 1].end,
                    readings: english.clone(),
                    needs_evidence: true,
                });
                at += length;
            } else {
                at += 1;
            }
        }
        found
    }
}

/// `text` with each candidate's range replaced by its first reading (`candidates` in order,
/// not overlapping, as [`Corrector::candidates`] gives them).
pub fn apply(text: &str, candidates: &[Candidate]) -> String {
    let mut corrected = String::with_capacity(text.len());
    let mut copied_up_to = 0;
    for candidate in candidates {
        corrected.push_str(&text[copied_up_to..candidate.range.start]);
        corrected.push_str(candidate.readings.first().copied().unwrap_or(""));
        copied_up_to = candidate.range.end;
    }
    corrected.push_str(&text[copied_up_to..]);
    corrected
}

impl Default for Corrector {
    fn default() -> Self {
        Corrector::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::singlish::TARGET_WORDS;
    use std::collections::HashSet;

    fn correct(text: &str) -> String {
        Corrector::new().correct(text)
    }

    #[test]
    fn tables_name_only_target_words_and_never_rewrite_one() {
        let targets: HashSet<&str> = TARGET_WORDS.iter().map(|&(w, _)| w).collect();
        let mut seen = HashSet::new();
        for &(word, variants) in PHRASE_CORRECTIONS.iter().chain(WORD_CORRECTIONS) {
            assert!(targets.contains(word), "{word} is not a target word");
            for variant in variants {
                assert!(
                    !targets.contains(variant),
                    "{variant} is a target word itself"
                );
                assert!(seen.insert(*variant), "{variant} is listed twice");
                assert_eq!(*variant, variant.to_lowercase());
            }
        }
    }

    #[test]
    fn every_listed_spelling_becomes_its_word_in_any_case_and_inside_a_sentence() {
        for &(word, variants) in PHRASE_CORRECTIONS.iter().chain(WORD_CORRECTIONS) {
            for variant in variants {
                assert_eq!(correct(variant), word, "{variant}");
                assert_eq!(
                    correct(&variant.to_uppercase()),
                    word,
                    "{variant} in capitals"
                );
                assert_eq!(
                    correct(&format!("Oh, {variant}! Really?")),
                    format!("Oh, {word}! Really?"),
                    "{variant} in a sentence"
                );
                // Glued to a letter it is another word. (Its inner words may still be
                // corrected on their own: "xwah la" → "xwah lah".)
                for glued in [format!("x{variant}"), format!("{variant}x")] {
                    let corrected = correct(&glued);
                    let times = |text: &str| {
                        split_words(text)
                            .iter()
                            .filter(|w| w.folded == word)
                            .count()
                    };
                    assert_eq!(
                        times(&corrected),
                        times(&glued),
                        "{glued:?} became {corrected:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn one_phrase_rule_per_word_written_out() {
        let cases = [
            ("While up, why you do that", "walao, why you do that"),
            ("CHEAP BUY", "cheebai"),
            ("lunch hour", "lanjiao"),
            ("can nina", "kanina"),
            ("nah bay", "nabei"),
            ("so pie say", "so paiseh"),
            ("she ok", "shiok"),
            ("Ala mak!", "alamak!"),
            ("ai yo", "aiyo"),
            ("eye yah", "aiyah"),
            ("jee ah lat", "jialat"),
            ("never jio", "bojio"),
            ("see ya", "sia"),
            ("si an", "sian"),
            ("key ah su", "kiasu"),
            ("kia si", "kiasi"),
            ("boh doh", "bodoh"),
            ("swah ku", "suaku"),
            ("lay pak", "lepak"),
            ("chop the seat", "chope the seat"),
            ("ma kan", "makan"),
            ("go stun", "gostan"),
            ("see bay", "sibei"),
            ("ar tas", "atas"),
            ("KPO", "kaypoh"),
            ("steady pom pi pi", "steady"),
            ("gun du", "goondu"),
        ];
        for (text, expected) in cases {
            assert_eq!(correct(text), expected, "{text}");
        }
    }

    #[test]
    fn one_word_rule_per_word_written_out() {
        let cases = [
            ("ok la", "ok lah"),
            ("Laaa", "lah"),
            ("ler", "lah"),
            ("ok lar", "ok lah"),
            ("Waa, so nice", "wah, so nice"),
            ("a lark", "a lark"),
            ("like that loh", "like that lor"),
            ("so low", "so lor"),
            ("power seh", "power sia"),
            ("really mah", "really meh"),
            ("arh", "ah"),
            ("err what", "eh what"),
            ("shio", "shiok"),
            ("leh huh", "leh huh"),
        ];
        for (text, expected) in cases {
            assert_eq!(correct(text), expected, "{text}");
        }
    }

    #[test]
    fn longest_phrase_first() {
        assert_eq!(correct("wah low"), "walao");
        assert_eq!(correct("a la mak"), "alamak");
        assert_eq!(correct("wah la"), "walao");
        assert_eq!(correct("pai seh"), "paiseh");
        assert_eq!(correct("steady pom pi pi lah"), "steady lah");
        assert_eq!(correct("jee ah lat"), "jialat");
    }

    #[test]
    fn particles_the_recogniser_stretches_or_spells_as_english_are_particles_at_a_clause_end() {
        // What tiny.en wrote for real Singapore speakers (issue K).
        assert_eq!(correct("to be days to be laaaaa"), "to be days to be lah");
        assert_eq!(
            correct("we later can go eat lunch law"),
            "we later can go eat lunch lor"
        );
        assert_eq!(correct("Like that lo. Ok, bye"), "Like that lor. Ok, bye");
        assert_eq!(correct("Not bad le?"), "Not bad leh?");
        // English keeps its words.
        for english in [
            "It is against the law.",
            "The law firm was closed.",
            "She studies law, and he does not.",
            "Lo and behold, it worked.",
        ] {
            assert_eq!(correct(english), english);
        }
    }

    #[test]
    fn walao_eh_keeps_its_eh() {
        assert_eq!(correct("wa lao eh"), "walao eh");
        assert_eq!(correct("Wah lao eh!"), "walao eh!");
        assert_eq!(correct("wah lao err"), "walao eh");
    }

    #[test]
    fn phrases_tolerate_the_recogniser_punctuation_but_not_sentence_ends() {
        assert_eq!(correct("Wah, lao."), "walao.");
        assert_eq!(correct("wah-lao"), "walao");
        assert_eq!(correct("Wah... lao"), "walao");
        assert_eq!(correct("wah…lao"), "walao");
        assert_eq!(correct("see  ya"), "sia");
        assert_eq!(correct("a while. Up there"), "a while. Up there");
        assert_eq!(correct("Wah! Lao"), "Wah! Lao");
        assert_eq!(correct("she (ok)"), "she (ok)");
    }

    #[test]
    fn the_original_substring_bugs_do_not_recur() {
        assert_eq!(correct("paiseh lah"), "paiseh lah");
        assert_eq!(correct("kaypoh"), "kaypoh");
        assert_eq!(correct("I chopped it"), "I chopped it");
        assert_eq!(correct("she okay"), "she okay");
        assert_eq!(correct("she ok"), "shiok");
        assert_eq!(correct("la la"), "lah lah");
        assert_eq!(correct("lah"), "lah");
        assert_eq!(correct("Salah is slow"), "Salah is slow");
        assert_eq!(correct("she's ok"), "she's ok");
    }

    #[test]
    fn untouched_text_keeps_its_case_and_spacing() {
        assert_eq!(correct("Hello  THERE,\tFriend"), "Hello  THERE,\tFriend");
        assert_eq!(correct("That's LA la-land"), "That's lah lah-land");
        assert_eq!(correct(""), "");
        assert_eq!(correct("Ünïcode chop ÜBER"), "Ünïcode chope ÜBER");
    }
}
