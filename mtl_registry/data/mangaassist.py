"""MangaAssist synthetic chat corpus: the embedded default data (SPEC sections 4 and 5).

Why synthetic: the demo needs chat messages that carry all three tasks at once (intent,
multi-label sentiment, entities), look like real chat (lower case, typos, emoji), and have a
test split that measures generalisation rather than memory. So the test split draws only on
held-out titles, creators, templates and cue phrasings, and every file is reproducible from a
seed alone (`random.Random(...)` per split, no global state, no set or hash ordering).

Module layout:
  1. label sets
  2. catalogue (works with their creator, genres, order ids) and its train/test split
  3. phrasings: intent templates, sentiment / gratitude / csat cues, each with a held-out part
  4. how sentiment and csat correlate with intent
  5. message builder: a message is a list of pieces, entities are pieces, offsets come from
     concatenation (never from searching the text afterwards)
  6. public generators and atomic file writing
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

# --------------------------------------------------------------------------- 1. label sets

INTENTS: tuple[str, ...] = (
    "product_search",
    "recommendation",
    "product_info",
    "price_availability",
    "order_status",
    "return_refund",
    "shipping_delivery",
    "account_payment",
    "complaint_escalation",
    "greeting_chitchat",
)
SENTIMENTS: tuple[str, ...] = (
    "satisfaction",
    "excitement",
    "frustration",
    "disappointment",
    "confusion",
    "urgency",
)
ENTITY_TYPES: tuple[str, ...] = ("TITLE", "CREATOR", "GENRE", "ORDER_ID")
# The retrain-head scenario: every old label kept, one new label added.
SENTIMENTS_V2: tuple[str, ...] = SENTIMENTS + ("gratitude",)
CSAT_LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)

# --------------------------------------------------------------------------- 2. catalogue

# (title, creator) pairs, so "{title} by {creator}" never pairs a series with a stranger.
# ASCII only and no title ends in punctuation: offsets stay stable under lower() and every
# entity edge is a word edge for a BERT basic tokenizer.
WORKS: tuple[tuple[str, str], ...] = (
    ("One Piece", "Eiichiro Oda"),
    ("Berserk", "Kentaro Miura"),
    ("Chainsaw Man", "Tatsuki Fujimoto"),
    ("Fire Punch", "Tatsuki Fujimoto"),
    ("Look Back", "Tatsuki Fujimoto"),
    ("Vagabond", "Takehiko Inoue"),
    ("Slam Dunk", "Takehiko Inoue"),
    ("Frieren: Beyond Journey's End", "Kanehito Yamada"),
    ("Monster", "Naoki Urasawa"),
    ("20th Century Boys", "Naoki Urasawa"),
    ("Pluto", "Naoki Urasawa"),
    ("Attack on Titan", "Hajime Isayama"),
    ("Death Note", "Tsugumi Ohba"),
    ("Bakuman", "Tsugumi Ohba"),
    ("Hikaru no Go", "Takeshi Obata"),
    ("Fullmetal Alchemist", "Hiromu Arakawa"),
    ("Silver Spoon", "Hiromu Arakawa"),
    ("Jujutsu Kaisen", "Gege Akutami"),
    ("Demon Slayer", "Koyoharu Gotouge"),
    ("My Hero Academia", "Kohei Horikoshi"),
    ("Hunter x Hunter", "Yoshihiro Togashi"),
    ("Yu Yu Hakusho", "Yoshihiro Togashi"),
    ("Dragon Ball", "Akira Toriyama"),
    ("Dr. Slump", "Akira Toriyama"),
    ("Naruto", "Masashi Kishimoto"),
    ("Bleach", "Tite Kubo"),
    ("Vinland Saga", "Makoto Yukimura"),
    ("Planetes", "Makoto Yukimura"),
    ("Spy x Family", "Tatsuya Endo"),
    ("Tokyo Ghoul", "Sui Ishida"),
    ("Domu: A Child's Dream", "Katsuhiro Otomo"),
    ("Ghost in the Shell", "Masamune Shirow"),
    ("Appleseed", "Masamune Shirow"),
    ("Sailor Moon", "Naoko Takeuchi"),
    ("Fruits Basket", "Natsuki Takaya"),
    ("Nana", "Ai Yazawa"),
    ("Paradise Kiss", "Ai Yazawa"),
    ("Kaguya-sama: Love Is War", "Aka Akasaka"),
    ("Oshi no Ko", "Aka Akasaka"),
    ("Dandadan", "Yukinobu Tatsu"),
    ("The Promised Neverland", "Kaiu Shirai"),
    ("Dr. Stone", "Riichiro Inagaki"),
    ("Eyeshield 21", "Riichiro Inagaki"),
    ("Black Clover", "Yuki Tabata"),
    ("Fire Force", "Atsushi Ohkubo"),
    ("Soul Eater", "Atsushi Ohkubo"),
    ("Blue Period", "Tsubasa Yamaguchi"),
    ("Goodnight Punpun", "Inio Asano"),
    ("Solanin", "Inio Asano"),
    ("Uzumaki", "Junji Ito"),
    ("Tomie", "Junji Ito"),
    ("Gyo", "Junji Ito"),
    ("Parasyte", "Hitoshi Iwaaki"),
    ("Dorohedoro", "Q Hayashida"),
    ("Made in Abyss", "Akihito Tsukushi"),
    ("Land of the Lustrous", "Haruko Ichikawa"),
    ("Witch Hat Atelier", "Kamome Shirahama"),
    ("Mushishi", "Yuki Urushibara"),
    ("Lone Wolf and Cub", "Kazuo Koike"),
    ("Rurouni Kenshin", "Nobuhiro Watsuki"),
    ("JoJo's Bizarre Adventure", "Hirohiko Araki"),
    ("Steel Ball Run", "Hirohiko Araki"),
    ("Golden Kamuy", "Satoru Noda"),
    ("Delicious in Dungeon", "Ryoko Kui"),
    ("Kingdom", "Yasuhisa Hara"),
    ("Hajime no Ippo", "George Morikawa"),
    ("Assassination Classroom", "Yusei Matsui"),
    ("Gintama", "Hideaki Sorachi"),
    ("Inuyasha", "Rumiko Takahashi"),
    ("Urusei Yatsura", "Rumiko Takahashi"),
    ("Cardcaptor Sakura", "CLAMP"),
    ("xxxHolic", "CLAMP"),
    ("Nausicaa of the Valley of the Wind", "Hayao Miyazaki"),
    ("Sakamoto Days", "Yuto Suzuki"),
    ("Kagurabachi", "Takeru Hokazono"),
    ("The Apothecary Diaries", "Natsu Hyuuga"),
    ("Chi's Sweet Home", "Konami Kanata"),
    ("Great Teacher Onizuka", "Tohru Fujisawa"),
    ("Initial D", "Shuichi Shigeno"),
    ("Boys Over Flowers", "Yoko Kamio"),
    ("The Rose of Versailles", "Riyoko Ikeda"),
    ("Trigun", "Yasuhiro Nightow"),
    ("Blue Exorcist", "Kazue Kato"),
    ("Claymore", "Norihiro Yagi"),
    ("Hellsing", "Kouta Hirano"),
    ("Seraph of the End", "Takaya Kagami"),
    ("Vampire Knight", "Matsuri Hino"),
    ("Fairy Tail", "Hiro Mashima"),
    ("Edens Zero", "Hiro Mashima"),
    ("A Silent Voice", "Yoshitoki Oima"),
    ("To Your Eternity", "Yoshitoki Oima"),
    ("Your Lie in April", "Naoshi Arakawa"),
    ("Skip and Loafer", "Misaki Takamatsu"),
    ("Ouran High School Host Club", "Bisco Hatori"),
    ("Blade of the Immortal", "Hiroaki Samura"),
    ("Knights of Sidonia", "Tsutomu Nihei"),
    ("Battle Angel Alita", "Yukito Kishiro"),
    ("Komi Can't Communicate", "Tomohito Oda"),
    ("Blue Lock", "Muneyuki Kaneshiro"),
    ("Kaiju No. 8", "Naoya Matsumoto"),
    ("Tokyo Revengers", "Ken Wakui"),
    ("March Comes in Like a Lion", "Chica Umino"),
    ("Honey and Clover", "Chica Umino"),
    ("Ashita no Joe", "Asao Takamori"),
    ("Astro Boy", "Osamu Tezuka"),
    ("Black Jack", "Osamu Tezuka"),
    ("Phoenix", "Osamu Tezuka"),
    ("Magi", "Shinobu Ohtaka"),
    ("Toilet-Bound Hanako-kun", "AidaIro"),
    ("Mashle", "Hajime Komoto"),
    ("Ranking of Kings", "Sosuke Toka"),
    ("Hell's Paradise", "Yuji Kaku"),
    ("The Summer Hikaru Died", "Mokumokuren"),
)

TITLES: tuple[str, ...] = tuple(title for title, _ in WORKS)
CREATORS: tuple[str, ...] = tuple(dict.fromkeys(creator for _, creator in WORKS))

# Hold out every fifth creator together with all of their works, so a test message never
# names a series or an author that training saw, and "{title} by {creator}" stays true.
TEST_CREATORS: tuple[str, ...] = CREATORS[3::5]
TRAIN_CREATORS: tuple[str, ...] = tuple(c for c in CREATORS if c not in TEST_CREATORS)
TEST_TITLES: tuple[str, ...] = tuple(t for t, c in WORKS if c in TEST_CREATORS)
TRAIN_TITLES: tuple[str, ...] = tuple(t for t, c in WORKS if c not in TEST_CREATORS)

# Genres are a closed set every split shares (a model should know all of them).
GENRES: tuple[str, ...] = (
    "shonen",
    "seinen",
    "shojo",
    "josei",
    "isekai",
    "horror",
    "romance",
    "slice of life",
    "sports",
    "fantasy",
    "dark fantasy",
    "sci-fi",
    "mecha",
    "mystery",
    "psychological thriller",
    "comedy",
    "action",
    "historical",
    "cooking",
    "supernatural",
)

# Two order-id styles customers paste: "MA-48213907" (site) and "#4821390" (e-mail receipts).
ORDER_ID_PATTERN: re.Pattern[str] = re.compile(r"MA-\d{8}|#\d{7}", re.IGNORECASE)

# --------------------------------------------------------------------------- 3. phrasings


class Phrasings(NamedTuple):
    """Phrasings for train/dev, and a disjoint held-out set used only by the test split."""

    train: tuple[str, ...]
    test: tuple[str, ...]


# Slots: {title} {title2} {creator} {genre} {order} are entities; {vol} {vol2} are numbers.
# Templates start lower case (the builder capitalises when a message is not lower-cased) and
# never contain a thank-you: gratitude is the label the retrain scenario adds.
TEMPLATES: dict[str, Phrasings] = {
    "product_search": Phrasings(
        train=(
            "do you have {title}?",
            "looking for {title} vol {vol}",
            "I'm searching for manga by {creator}",
            "where can I find {title} on your site?",
            "do you carry anything by {creator}?",
            "can't find {title} in the search, do you sell it?",
            "show me {genre} manga by {creator}",
            "is there a box set of {title}?",
            "I need the {title} omnibus editions",
            "search {title}",
            "got any {creator} books?",
            "do you stock the english edition of {title}?",
            "where's the {title} section",
            "I want to buy {title} and {title2}",
            "find me {title} by {creator}",
        ),
        test=(
            "hey do u sell {title} at all?",
            "trying to track down every volume of {title}",
            "which of {creator}'s series do you have in the shop",
            "is {title} something you guys carry?",
            "need the complete run of {title} by {creator}",
        ),
    ),
    "recommendation": Phrasings(
        train=(
            "recommend me something like {title}",
            "any good {genre} manga?",
            "what should I read after {title}?",
            "I loved {title}, what else would I like?",
            "suggest some {genre} series for a beginner",
            "other manga by {creator} worth reading?",
            "what's a good {genre} manga similar to {title}?",
            "looking for recs: {genre}, preferably by {creator}",
            "my kid likes {title}, any suggestions for a gift?",
            "give me your top 3 {genre} picks",
            "if I liked {creator}'s art, who else should I check out?",
            "need a new series to binge, I've read {title} and {title2}",
            "what's popular in {genre} right now?",
            "best {genre} manga of all time?",
            "something like {title} by {creator} but more {genre}",
        ),
        test=(
            "what would you pick for someone who's into {genre} stuff",
            "just finished {title} and i'm lost, what do i read next?",
            "fans of {creator} usually enjoy what?",
            "point me to a {genre} series that's as good as {title}",
            "anything in the vein of {title}?",
        ),
    ),
    "product_info": Phrasings(
        train=(
            "how many volumes does {title} have?",
            "who wrote {title}?",
            "is {title} finished or still ongoing?",
            "what's {title} about?",
            "is {title} suitable for a 12 year old?",
            "is the {title} translation the official one?",
            "what size are the {title} volumes, is it hardcover?",
            "does vol {vol} of {title} include color pages?",
            "is {title} in color or black and white?",
            "which volume of {title} does the anime end at?",
            "how many pages is {title} vol {vol}?",
            "is {title} by {creator} a standalone or a series?",
            "what age rating does {title} have?",
            "is the {title} deluxe edition different from the regular one?",
        ),
        test=(
            "quick q about {title}: how long is the series in total",
            "can u tell me what kind of story {title} is?",
            "has {creator} finished {title} yet or nah",
            "what comes in the {title} collector's edition?",
            "is vol {vol} of {title} the last one",
        ),
    ),
    "price_availability": Phrasings(
        train=(
            "how much is {title} vol {vol}?",
            "is {title} vol {vol} in stock?",
            "when will {title} be back in stock?",
            "can I preorder {title} vol {vol}?",
            "what's the price of the {title} box set?",
            "is there a discount on {title}?",
            "is vol {vol} of {title} available yet?",
            "do you have {title} vol {vol} in stock or is it sold out?",
            "how much for volumes {vol} to {vol2} of {title}?",
            "any sales on {creator} books this week?",
            "is the {title} box set cheaper than buying single volumes?",
            "will {title} vol {vol} restock soon?",
            "price check on {title} please",
            "is {title} on sale?",
        ),
        test=(
            "what does vol {vol} of {title} cost",
            "still got copies of {title} left or nah?",
            "is {title} vol {vol} purchasable right now",
            "r u restocking {title} anytime soon?",
            "how pricey is the {title} complete set",
        ),
    ),
    "order_status": Phrasings(
        train=(
            "where is my order {order}?",
            "any update on order {order}?",
            "has {order} shipped yet?",
            "what's the status of my order?",
            "order {order} still says processing",
            "can you check order {order} for me?",
            "I ordered {title} last week, has it been sent?",
            "my order {order} hasn't moved in days",
            "when will order {order} be dispatched?",
            "is my {title} order confirmed?",
            "tracking for {order} isn't updating",
            "did my order go through? it's {order}",
            "can I see the status of {order}",
            "I placed an order for {title} vol {vol}, what's happening with it?",
        ),
        test=(
            "checking in on {order}, is it on its way?",
            "what stage is my purchase {order} at",
            "no news about order {order} since monday",
            "was my {title} order processed or not?",
            "order number {order}, status please",
        ),
    ),
    "return_refund": Phrasings(
        train=(
            "I want to return order {order}",
            "how do I get a refund for {title}?",
            "can I return {title} vol {vol}? it was the wrong volume",
            "refund for order {order} please",
            "what's your return policy?",
            "my copy of {title} arrived damaged, can I exchange it?",
            "I got {title} instead of {title2}, want to send it back",
            "how long do refunds take?",
            "I'd like to cancel and refund {order}",
            "can I exchange {title} vol {vol} for vol {vol2}?",
            "started a return for {order}, when do I get my money?",
            "do I have to pay return shipping?",
            "the refund for {order} never arrived",
            "is it too late to return {title}?",
        ),
        test=(
            "i'd like my money back for {order}",
            "how do i send back a manga i didn't want?",
            "wrong item in {order}, need to swap it",
            "can {title} be returned if i already opened it",
            "refund status on {order}?",
        ),
    ),
    "shipping_delivery": Phrasings(
        train=(
            "how long does shipping take?",
            "do you ship to Canada?",
            "how much is express shipping?",
            "can I change the delivery address for {order}?",
            "my package for {order} says delivered but I don't have it",
            "is there free shipping over a certain amount?",
            "when will {order} arrive?",
            "can I get {title} delivered by the weekend?",
            "which courier do you use?",
            "do you ship internationally?",
            "the tracking for {order} says it's stuck in customs",
            "can I pick up my order in store instead of delivery?",
            "what are the delivery options for {title} vol {vol}?",
            "my parcel {order} went to the wrong address",
        ),
        test=(
            "will {order} get here before the end of the month?",
            "what's the fastest way to get a package to australia",
            "the courier left {order} at the wrong door",
            "is overnight delivery a thing for {title}?",
            "how are books packed for shipping, will they get bent",
        ),
    ),
    "account_payment": Phrasings(
        train=(
            "I can't log into my account",
            "how do I reset my password?",
            "my card was declined",
            "can I pay with PayPal?",
            "I was charged twice for {order}",
            "how do I update my payment method?",
            "can I change the email on my account?",
            "do you accept gift cards?",
            "how do I delete my account?",
            "my promo code isn't working",
            "why was my card charged for {order} already?",
            "can I split the payment for {title} across two cards?",
            "where do I see my invoices?",
            "is it safe to save my card on the site?",
        ),
        test=(
            "locked out of my profile after too many attempts",
            "does the checkout take apple pay?",
            "the bank shows a pending charge for {order} that shouldn't be there",
            "how do i switch the card linked to my account",
            "my store credit disappeared from my account",
        ),
    ),
    "complaint_escalation": Phrasings(
        train=(
            "I want to speak to a manager",
            "this is the third time {order} has been delayed, I want a real person",
            "I'm filing a complaint about order {order}",
            "your customer service is useless",
            "let me talk to a human please",
            "I've been waiting weeks for {order} and nobody answers my emails",
            "the {title} box set came crushed and support ignored me",
            "escalate this please, {order} is a mess",
            "I want to file a formal complaint",
            "nobody has replied to my ticket about {order}",
            "this bot is not helping, get me an agent",
            "I'm going to report this to consumer protection",
            "who is in charge here? I need to complain about {order}",
            "you sent me a damaged {title} twice, this is unacceptable",
        ),
        test=(
            "connect me with someone senior, i'm done with this",
            "put me through to your supervisor about {order}",
            "i'll be leaving a bad review unless someone sorts out {order}",
            "need a human to look at what happened with my {title} order",
            "raising an official grievance about {order}",
        ),
    ),
    "greeting_chitchat": Phrasings(
        train=(
            "hi",
            "hello there",
            "hey, are you a bot?",
            "good morning!",
            "what can you do?",
            "who am I talking to?",
            "how's your day going?",
            "what's your favorite manga?",
            "have you read {title}?",
            "lol you're pretty smart for a bot",
            "yo",
            "are you a real person?",
            "nice to meet you",
            "do you like {creator}'s work?",
            "bye for now",
        ),
        test=(
            "heyyy what's up",
            "is anyone there?",
            "good evening, how are things",
            "so which character from {title} would you be?",
            "see ya later",
        ),
    ),
}
TRAIN_TEMPLATES: dict[str, tuple[str, ...]] = {i: p.train for i, p in TEMPLATES.items()}
TEST_TEMPLATES: dict[str, tuple[str, ...]] = {i: p.test for i, p in TEMPLATES.items()}

# One cue per label present; cues combine when a message has several labels.
SENTIMENT_CUES: dict[str, Phrasings] = {
    "satisfaction": Phrasings(
        train=(
            "love it, perfect",
            "super happy with my last order",
            "the print quality is amazing",
            "love this shop",
            "everything arrived in great shape last time",
            "really pleased with the service",
            "the last box set was perfect",
            "no complaints at all, great stuff",
        ),
        test=(
            "honestly couldn't be happier with you guys",
            "my previous purchase was spot on",
            "big fan of how you pack things",
        ),
    ),
    "excitement": Phrasings(
        train=(
            "can't wait!!",
            "so hyped",
            "omg finally",
            "been waiting forever for this one",
            "this is gonna be epic",
            "I'm so excited",
            "let's gooo",
            "yesss",
        ),
        test=("counting down the days", "buzzing for this", "absolutely pumped"),
    ),
    "frustration": Phrasings(
        train=(
            "ordered twice already",
            "this is ridiculous",
            "ugh",
            "I've asked three times now",
            "seriously??",
            "still nothing",
            "I'm so fed up",
            "this keeps happening",
        ),
        test=("for crying out loud", "at my wits' end here", "how many times do i have to ask"),
    ),
    "disappointment": Phrasings(
        train=(
            "kinda let down",
            "expected better tbh",
            "that's a shame",
            "really disappointed",
            "such a bummer",
            "sad about it",
            "not what I hoped for",
            "the last volume was a letdown",
        ),
        test=("feeling a bit deflated", "oh well, that stinks", "kind of a downer honestly"),
    ),
    "confusion": Phrasings(
        train=(
            "huh? what does that mean",
            "I'm confused",
            "not sure I understand",
            "wait what?",
            "the website is so confusing",
            "I don't get it",
            "can someone explain",
            "which one is it??",
        ),
        test=("this makes zero sense to me", "lost here, help me out", "am i missing something?"),
    ),
    "urgency": Phrasings(
        train=(
            "asap",
            "need it by friday",
            "it's urgent",
            "please hurry",
            "it's a birthday gift for tomorrow",
            "quick answer please",
            "right now please",
            "running out of time here",
        ),
        test=("time sensitive!!", "need this sorted today", "party's on saturday so hurry"),
    ),
    # Only the sentiment-v2 scenario draws on this one.
    "gratitude": Phrasings(
        train=(
            "thanks so much",
            "ty!!",
            "you guys are the best",
            "thank you!",
            "appreciate it",
            "thx a lot",
            "many thanks",
            "cheers for the help",
        ),
        test=("much appreciated", "tysm", "you're a lifesaver, thank you"),
    ),
}

# Level 3 is the neutral middle: mild hedges, and half the time no cue at all.
CSAT_CUES: dict[int, Phrasings] = {
    1: Phrasings(
        train=(
            "worst shop ever",
            "absolutely furious",
            "never ordering from you again",
            "this is a joke",
            "completely unacceptable",
            "I'm livid",
        ),
        test=("beyond angry right now", "you've lost a customer"),
    ),
    2: Phrasings(
        train=(
            "not great tbh",
            "kinda annoyed",
            "a bit disappointed",
            "could be better",
            "not thrilled",
            "meh, not impressed",
        ),
        test=("slightly irritated", "not the best experience"),
    ),
    3: Phrasings(
        train=("ok", "fine I guess", "it's alright", "no strong feelings", "whatever works"),
        test=("it is what it is", "so-so"),
    ),
    4: Phrasings(
        train=(
            "pretty happy overall",
            "good so far",
            "nice job",
            "quite pleased",
            "works for me",
            "not bad at all",
        ),
        test=("decent experience", "mostly satisfied"),
    ),
    5: Phrasings(
        train=(
            "absolutely love this shop",
            "best service ever",
            "you're amazing",
            "over the moon",
            "perfect as always",
            "so delighted",
        ),
        test=("couldn't ask for more", "blown away honestly"),
    ),
}

SENTIMENT_EMOJI: dict[str, tuple[str, ...]] = {
    "satisfaction": ("❤️", "😊"),
    "excitement": ("🔥", "🤩", "🎉"),
    "frustration": ("😡", "😤"),
    "disappointment": ("😭", "😞"),
    "confusion": ("😅", "🤔"),
    "urgency": ("🙏", "⏰"),
    "gratitude": ("🥰", "🙌"),
}
NEUTRAL_EMOJI: tuple[str, ...] = ("📚", "👀")
CSAT_EMOJI: dict[int, tuple[str, ...]] = {
    1: ("😡", "🤬"),
    2: ("😒", "😕"),
    3: (),
    4: ("🙂", "👍"),
    5: ("😍", "❤️", "🥳"),
}
_PREFIX_FILLERS: tuple[str, ...] = ("ok so ", "um ", "btw ", "quick question: ", "so ")
_SUFFIX_FILLERS: tuple[str, ...] = (" lol", " tbh", " pls", " haha")

# --------------------------------------------------------------------------- 4. correlations

# Per intent: chance of a neutral message, then label weights in SENTIMENTS_V2 order
# (satisfaction, excitement, frustration, disappointment, confusion, urgency, gratitude).
# Correlated with intent, never determined by it.
_MOOD: dict[str, tuple[float, tuple[float, ...]]] = {
    "product_search": (0.40, (1.0, 3.0, 1.0, 0.5, 1.5, 2.0, 2.0)),
    "recommendation": (0.35, (2.0, 3.0, 0.3, 1.0, 1.0, 0.3, 2.5)),
    "product_info": (0.40, (1.0, 2.0, 0.5, 0.5, 3.0, 0.5, 2.0)),
    "price_availability": (0.35, (0.5, 3.0, 1.5, 1.5, 0.5, 2.5, 1.5)),
    "order_status": (0.30, (0.3, 1.0, 3.0, 0.5, 1.0, 3.0, 1.5)),
    "return_refund": (0.25, (0.2, 0.1, 2.5, 3.0, 1.5, 1.0, 1.2)),
    "shipping_delivery": (0.30, (0.3, 0.5, 2.0, 1.0, 1.5, 3.0, 1.5)),
    "account_payment": (0.30, (0.2, 0.1, 2.5, 0.5, 3.0, 2.0, 1.5)),
    "complaint_escalation": (0.08, (0.05, 0.02, 6.0, 2.5, 0.5, 1.5, 0.1)),
    "greeting_chitchat": (0.50, (2.0, 3.0, 0.2, 0.2, 0.8, 0.1, 4.0)),
}
_LABEL_COUNT_WEIGHTS: tuple[float, float, float] = (0.72, 0.23, 0.05)  # 1, 2 or 3 labels

# Per intent: weights of csat levels 1..5 (complaints skew low, chit-chat skews high).
_CSAT_PRIOR: dict[str, tuple[float, ...]] = {
    "product_search": (1.0, 2.0, 4.0, 3.0, 2.0),
    "recommendation": (0.5, 1.5, 3.0, 3.5, 3.0),
    "product_info": (0.5, 1.5, 4.0, 3.0, 2.0),
    "price_availability": (1.0, 2.5, 4.0, 3.0, 1.5),
    "order_status": (2.5, 3.0, 3.0, 1.5, 1.0),
    "return_refund": (3.0, 3.5, 2.5, 1.0, 0.5),
    "shipping_delivery": (2.0, 3.0, 3.5, 2.0, 1.0),
    "account_payment": (2.5, 3.0, 3.0, 1.5, 0.8),
    "complaint_escalation": (6.0, 3.0, 1.0, 0.3, 0.1),
    "greeting_chitchat": (0.3, 0.8, 3.0, 3.5, 4.0),
}
_CSAT_LABEL_NOISE = 0.05  # raters disagree: the label is sometimes one step off the cues

# --------------------------------------------------------------------------- 5. message builder

Piece = tuple[str, str | None]  # (surface text, entity label; None for plain words)
Record = dict[str, Any]

_SLOT = re.compile(r"\{(\w+)\}")
_TYPO_WORD = re.compile(r"[A-Za-z]{4,}")


@dataclass(frozen=True)
class _Pools:
    """What one split may draw from: the held-out half for test, the rest otherwise."""

    works: tuple[tuple[str, str], ...]
    creators: tuple[str, ...]
    templates: Mapping[str, tuple[str, ...]]
    sentiment_cues: Mapping[str, tuple[str, ...]]
    csat_cues: Mapping[int, tuple[str, ...]]


def _pools(held_out: bool) -> _Pools:
    def side(p: Phrasings) -> tuple[str, ...]:
        return p.test if held_out else p.train

    creators = TEST_CREATORS if held_out else TRAIN_CREATORS
    return _Pools(
        works=tuple(w for w in WORKS if w[1] in creators),
        creators=creators,
        templates={k: side(p) for k, p in TEMPLATES.items()},
        sentiment_cues={k: side(p) for k, p in SENTIMENT_CUES.items()},
        csat_cues={k: side(p) for k, p in CSAT_CUES.items()},
    )


def _order_id(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return f"MA-{rng.randrange(10**7, 10**8)}"
    return f"#{rng.randrange(10**6, 10**7)}"


def _fill(rng: random.Random, template: str, pools: _Pools) -> list[Piece]:
    """Entities become their own pieces, so their offsets are known by construction."""
    title, author = rng.choice(pools.works)
    title2 = title
    while title2 == title:
        title2 = rng.choice(pools.works)[0]
    vol = rng.randint(1, 28)
    slots: dict[str, Piece] = {
        "title": (title, "TITLE"),
        "title2": (title2, "TITLE"),
        "creator": (author if "{title}" in template else rng.choice(pools.creators), "CREATOR"),
        "genre": (rng.choice(GENRES), "GENRE"),
        "order": (_order_id(rng), "ORDER_ID"),
        "vol": (str(vol), None),
        "vol2": (str(vol + rng.randint(1, 5)), None),
    }
    parts = _SLOT.split(template)  # literal, slot name, literal, slot name, ...
    pieces = [slots[part] if i % 2 else (part, None) for i, part in enumerate(parts)]
    for i in range(1, len(pieces)):  # "the {title}" + "The Rose of Versailles": one "the"
        if pieces[i][0].startswith("The ") and pieces[i - 1][0].lower().endswith("the "):
            pieces[i - 1] = (pieces[i - 1][0][:-4], None)
    return [p for p in pieces if p[0]]


def _typo(rng: random.Random, pieces: list[Piece]) -> list[Piece]:
    """Swap or drop one inner letter of a plain word; entity pieces are never touched."""
    spots = [
        (i, m.start(), m.end())
        for i, (text, label) in enumerate(pieces)
        if label is None
        for m in _TYPO_WORD.finditer(text)
    ]
    if not spots:
        return pieces
    i, start, end = rng.choice(spots)
    text = pieces[i][0]
    k = rng.randrange(start + 1, end - 1)  # keep first and last letter: the word stays a word
    if rng.random() < 0.5:
        text = text[:k] + text[k + 1] + text[k] + text[k + 2 :]
    else:
        text = text[:k] + text[k + 1 :]
    return pieces[:i] + [(text, None)] + pieces[i + 1 :]


def _compose(
    rng: random.Random,
    body: list[Piece],
    cues: Sequence[str],
    emojis: Sequence[str],
    emoji_p: float,
) -> tuple[str, list[dict[str, Any]]]:
    """Wrap a filled template in cues and chat noise, then join it, recording entity offsets.

    Every separator next to a piece is a space or punctuation, so entity edges stay word
    edges; emoji always get a space (a BERT tokenizer would glue them to the previous word).
    """
    pieces = list(body)
    for cue in cues:
        if rng.random() < 0.4:
            sep = " " if cue[-1] in "?!." else rng.choice((", ", ". ", "... ", " - ", " "))
            pieces.insert(0, (cue + sep, None))
        else:
            sep = " " if pieces[-1][0][-1] in "?!.," else rng.choice((", ", ". ", " - ", " "))
            pieces.append((sep + cue, None))
    if rng.random() < 0.12:
        if rng.random() < 0.5:
            pieces.insert(0, (rng.choice(_PREFIX_FILLERS), None))
        else:
            pieces.append((rng.choice(_SUFFIX_FILLERS), None))

    last, label = pieces[-1]
    roll = rng.random()
    if label is None and roll < 0.3 and last[-1] in ".?":  # lazy typist: no final punctuation
        last = last[:-1].rstrip()
    elif label is None and roll < 0.45 and last[-1] in "?!":  # "??" / "!!!"
        last += last[-1] * rng.randint(1, 2)
    pieces[-1] = (last, label)
    pieces = [p for p in pieces if p[0]]
    if emojis and rng.random() < emoji_p:
        pieces.append((" " + rng.choice(emojis), None))

    if rng.random() < 0.7:
        pieces = [(text.lower(), label) for text, label in pieces]
    elif pieces[0][1] is None:
        pieces[0] = (pieces[0][0][:1].upper() + pieces[0][0][1:], None)
    for _ in range(rng.choices((0, 1, 2), weights=(0.78, 0.17, 0.05))[0]):
        pieces = _typo(rng, pieces)

    text, entities, pos = "", [], 0
    for surface, label in pieces:
        if label is not None:
            entities.append({"start": pos, "end": pos + len(surface), "label": label})
        text += surface
        pos += len(surface)
    if not text or text != text.strip():
        raise AssertionError(f"generator produced bad text {text!r}")  # a template bug
    return text, entities


def _sample_sentiment(rng: random.Random, intent: str, labels: tuple[str, ...]) -> list[str]:
    """0 labels (neutral) or 1-3 labels drawn without replacement, weighted by intent."""
    neutral, weights = _MOOD[intent]
    if rng.random() < neutral:
        return []
    pool = dict(zip(labels, weights))  # zip stops at len(labels): v1 ignores gratitude
    chosen: list[str] = []
    for _ in range(rng.choices((1, 2, 3), weights=_LABEL_COUNT_WEIGHTS)[0]):
        names = list(pool)
        pick = rng.choices(names, weights=[pool[n] for n in names])[0]
        chosen.append(pick)
        del pool[pick]
    return sorted(chosen)


def _sentiment_message(
    rng: random.Random, pools: _Pools, intent: str, labels: tuple[str, ...]
) -> tuple[str, list[dict[str, Any]], list[str]]:
    body = _fill(rng, rng.choice(pools.templates[intent]), pools)
    sentiment = _sample_sentiment(rng, intent, labels)
    cues = [rng.choice(pools.sentiment_cues[label]) for label in sentiment]
    rng.shuffle(cues)
    if sentiment:
        emojis = [e for label in sentiment for e in SENTIMENT_EMOJI[label]]
        text, entities = _compose(rng, body, cues, emojis, 0.35)
    else:
        text, entities = _compose(rng, body, cues, NEUTRAL_EMOJI, 0.06)
    return text, entities, sentiment


def _joint_record(rng: random.Random, pools: _Pools, intent: str) -> Record:
    text, entities, sentiment = _sentiment_message(rng, pools, intent, SENTIMENTS)
    return {"text": text, "intent": intent, "sentiment": sentiment, "entities": entities}


def _sentiment_v2_record(rng: random.Random, pools: _Pools, intent: str) -> Record:
    text, _, sentiment = _sentiment_message(rng, pools, intent, SENTIMENTS_V2)
    return {"text": text, "sentiment": sentiment}


def _csat_record(rng: random.Random, pools: _Pools, intent: str) -> Record:
    """Cues of one level, or two levels that average to it (mixed feelings), or none at 3."""
    body = _fill(rng, rng.choice(pools.templates[intent]), pools)
    level = rng.choices(CSAT_LEVELS, weights=_CSAT_PRIOR[intent])[0]
    spread = rng.choice((1, 2))
    if rng.random() < 0.25 and level - spread >= 1 and level + spread <= 5:
        cues = [
            rng.choice(pools.csat_cues[level - spread]),
            rng.choice(pools.csat_cues[level + spread]),
        ]
        rng.shuffle(cues)
    elif level == 3 and rng.random() < 0.5:
        cues = []
    else:
        cues = [rng.choice(pools.csat_cues[level])]
    text, _ = _compose(rng, body, cues, CSAT_EMOJI[level], 0.3)
    if rng.random() < _CSAT_LABEL_NOISE:
        level = min(5, max(1, level + rng.choice((-1, 1))))
    return {"text": text, "csat": level}


# --------------------------------------------------------------------------- 6. generators

_HELD_OUT = {"train": _pools(held_out=False), "test": _pools(held_out=True)}


def _write_jsonl(path: Path, records: Sequence[Record]) -> None:
    """Atomic: readers see the old file or the complete new one, never a half-written one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_scenario(
    scenario: str,
    make: Callable[[random.Random, _Pools, str], Record],
    out_dir: str | Path,
    seed: int,
    sizes: Mapping[str, int],
) -> dict[str, int]:
    """One RNG per split (seeded by a string, which random hashes with SHA-512, not hash()),
    so changing n_train does not change the test split."""
    for split, n in sizes.items():
        if n < 0:
            raise ValueError(f"n_{split} must be >= 0, got {n}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        rng = random.Random(f"{scenario}:{seed}:{split}")
        pools = _HELD_OUT["test" if split == "test" else "train"]
        intents = [INTENTS[i % len(INTENTS)] for i in range(n)]  # balanced, then shuffled
        rng.shuffle(intents)
        _write_jsonl(out / f"{split}.jsonl", [make(rng, pools, intent) for intent in intents])
    return dict(sizes)


def generate(
    out_dir: str | Path, seed: int = 0, n_train: int = 2000, n_dev: int = 300, n_test: int = 500
) -> dict[str, int]:
    """Joint corpus: every record has intent, sentiment and entities. Returns split -> count."""
    sizes = {"train": n_train, "dev": n_dev, "test": n_test}
    return _write_scenario("mangaassist", _joint_record, out_dir, seed, sizes)


def generate_sentiment_v2(
    out_dir: str | Path, seed: int = 0, n_train: int = 1200, n_dev: int = 200, n_test: int = 300
) -> dict[str, int]:
    """Retrain-head scenario: sentiment only, with SENTIMENTS_V2 (old labels + gratitude)."""
    sizes = {"train": n_train, "dev": n_dev, "test": n_test}
    return _write_scenario("mangaassist-sentiment-v2", _sentiment_v2_record, out_dir, seed, sizes)


def generate_csat(
    out_dir: str | Path, seed: int = 0, n_train: int = 1200, n_dev: int = 200, n_test: int = 300
) -> dict[str, int]:
    """New-task scenario: customer satisfaction 1..5 per message, for an ordinal head."""
    sizes = {"train": n_train, "dev": n_dev, "test": n_test}
    return _write_scenario("mangaassist-csat", _csat_record, out_dir, seed, sizes)


SCENARIOS: dict[str, Callable[..., dict[str, int]]] = {
    "mangaassist": generate,
    "mangaassist-sentiment-v2": generate_sentiment_v2,
    "mangaassist-csat": generate_csat,
}
