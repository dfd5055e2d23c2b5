"""Writes the small multiple-choice sets of data/mc/ (run from the repository root: python data/mc/build.py).

Written for this repository as far controls for a small real LM (SmolLM2-135M-Instruct): questions whose answers
are common knowledge, from the tables below, with distractors drawn (seeded) from the same table, so a model
that knows the fact can pick it and one that does not is at chance (1/4). Each line has the shape of
``kind: multiple_choice`` (data/README.md): question, choices, answer (the correct choice's text).
"""
import json
import random
from pathlib import Path

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Japan": "Tokyo", "China": "Beijing", "Russia": "Moscow", "Egypt": "Cairo", "Greece": "Athens",
    "Canada": "Ottawa", "Australia": "Canberra", "India": "New Delhi", "Brazil": "Brasilia", "Mexico": "Mexico City",
    "Argentina": "Buenos Aires", "Kenya": "Nairobi", "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki",
    "Denmark": "Copenhagen", "Poland": "Warsaw", "Austria": "Vienna", "Ireland": "Dublin", "Turkey": "Ankara",
    "Thailand": "Bangkok", "South Korea": "Seoul", "Peru": "Lima", "Chile": "Santiago", "Cuba": "Havana",
    "Hungary": "Budapest", "Belgium": "Brussels", "the Netherlands": "Amsterdam", "Switzerland": "Bern",
    "Iran": "Tehran", "Iraq": "Baghdad", "Vietnam": "Hanoi", "Indonesia": "Jakarta", "Nigeria": "Abuja",
    "Colombia": "Bogota",
}
OPPOSITES = {
    "hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "up": "down", "light": "dark", "old": "young",
    "open": "closed", "early": "late", "full": "empty", "hard": "soft", "heavy": "light", "high": "low",
    "long": "short", "loud": "quiet", "rich": "poor", "strong": "weak", "thick": "thin", "wet": "dry",
    "wide": "narrow", "clean": "dirty", "easy": "difficult", "first": "last", "inside": "outside", "left": "right",
    "near": "far", "push": "pull", "buy": "sell", "win": "lose", "true": "false", "day": "night", "begin": "end",
    "alive": "dead", "sharp": "dull", "sweet": "sour", "love": "hate", "give": "take", "remember": "forget",
    "arrive": "leave", "accept": "refuse",
}
ANIMALS = {
    "dog": "mammal", "cat": "mammal", "horse": "mammal", "whale": "mammal", "bat": "mammal", "cow": "mammal",
    "elephant": "mammal", "mouse": "mammal", "dolphin": "mammal", "lion": "mammal",
    "eagle": "bird", "sparrow": "bird", "penguin": "bird", "owl": "bird", "parrot": "bird", "duck": "bird",
    "ostrich": "bird", "crow": "bird",
    "salmon": "fish", "shark": "fish", "tuna": "fish", "trout": "fish", "goldfish": "fish", "cod": "fish",
    "ant": "insect", "bee": "insect", "butterfly": "insect", "beetle": "insect", "mosquito": "insect",
    "grasshopper": "insect", "fly": "insect",
    "snake": "reptile", "lizard": "reptile", "crocodile": "reptile", "turtle": "reptile", "iguana": "reptile",
    "frog": "amphibian", "toad": "amphibian", "salamander": "amphibian", "newt": "amphibian",
}
SCIENCE = [  # (question, answer, three distractors)
    ("What do plants need from the sun to make food?", "light", ["sound", "wind", "sand"]),
    ("What gas do people breathe in to stay alive?", "oxygen", ["helium", "smoke", "steam"]),
    ("What gas do plants take in from the air?", "carbon dioxide", ["oxygen", "helium", "neon"]),
    ("At what temperature in Celsius does water freeze?", "0 degrees", ["50 degrees", "100 degrees", "20 degrees"]),
    ("At what temperature in Celsius does water boil?", "100 degrees", ["0 degrees", "50 degrees", "10 degrees"]),
    ("Which planet is closest to the sun?", "Mercury", ["Mars", "Jupiter", "Neptune"]),
    ("Which planet is known as the red planet?", "Mars", ["Venus", "Saturn", "Uranus"]),
    ("What is the largest planet in our solar system?", "Jupiter", ["Mercury", "Mars", "Venus"]),
    ("What force pulls objects toward the ground?", "gravity", ["magnetism", "friction", "wind"]),
    ("What is the center of an atom called?", "nucleus", ["shell", "orbit", "cell wall"]),
    ("Which organ pumps blood through the body?", "heart", ["lung", "stomach", "liver"]),
    ("Which organ do people use to breathe?", "lungs", ["heart", "kidneys", "bones"]),
    ("What do bees make?", "honey", ["milk", "silk", "wax paper"]),
    ("What is frozen water called?", "ice", ["steam", "fog", "sand"]),
    ("What is water in the form of a gas called?", "steam", ["ice", "snow", "rock"]),
    ("How many legs does an insect have?", "six", ["four", "eight", "ten"]),
    ("How many legs does a spider have?", "eight", ["six", "four", "two"]),
    ("What star is at the center of our solar system?", "the sun", ["the moon", "Mars", "Polaris"]),
    ("What does a thermometer measure?", "temperature", ["weight", "length", "speed"]),
    ("What part of the plant takes up water from the soil?", "roots", ["flowers", "leaves", "seeds"]),
    ("Which material is attracted to a magnet?", "iron", ["wood", "glass", "plastic"]),
    ("What is the hardest natural material?", "diamond", ["gold", "chalk", "clay"]),
    ("What do we call animals that eat only plants?", "herbivores", ["carnivores", "predators", "insects"]),
    ("What do caterpillars turn into?", "butterflies", ["spiders", "beetles", "worms"]),
    ("What covers most of the surface of the Earth?", "water", ["sand", "ice", "forest"]),
    ("What makes up the bones of the body mostly?", "calcium", ["sugar", "salt", "iron"]),
    ("What does the moon go around?", "the Earth", ["the sun only", "Mars", "Jupiter"]),
    ("What is the main gas in the air we breathe?", "nitrogen", ["oxygen", "hydrogen", "carbon dioxide"]),
    ("What kind of energy does a battery store?", "chemical energy", ["sound energy", "nuclear energy", "wind energy"]),
    ("Which sense uses the nose?", "smell", ["sight", "hearing", "touch"]),
    ("Which sense uses the ears?", "hearing", ["taste", "smell", "sight"]),
    ("What is the closest star to the Earth?", "the sun", ["Sirius", "the moon", "Venus"]),
    ("What do seeds grow into?", "plants", ["rocks", "clouds", "animals"]),
    ("What is rain made of?", "water", ["sand", "salt", "oil"]),
    ("What do fish use to breathe under water?", "gills", ["lungs", "fins", "scales"]),
    ("Which season comes after winter?", "spring", ["summer", "autumn", "winter again"]),
    ("What tool do people use to look at stars far away?", "a telescope", ["a microscope", "a ruler", "a scale"]),
    ("What tool makes very small things look bigger?", "a microscope", ["a telescope", "a hammer", "a clock"]),
    ("What shape is the Earth?", "round", ["flat", "square", "triangular"]),
    ("What do we call a scientist who studies rocks?", "a geologist", ["a biologist", "a chemist", "an astronomer"]),
]


def from_table(table: dict, question: str, rng: random.Random) -> list[dict]:
    values = sorted(set(table.values()))
    rows = []
    for key, answer in table.items():
        wrong = rng.sample([v for v in values if v != answer], 3)
        choices = wrong + [answer]
        rng.shuffle(choices)
        rows.append({"question": question.format(key), "choices": choices, "answer": answer})
    return rows


def from_list(items: list, rng: random.Random) -> list[dict]:
    rows = []
    for question, answer, wrong in items:
        choices = [*wrong, answer]
        rng.shuffle(choices)
        rows.append({"question": question, "choices": choices, "answer": answer})
    return rows


def main() -> None:
    out = Path(__file__).parent
    rng = random.Random(0)
    sets = {"capitals": from_table(CAPITALS, "What is the capital of {}?", rng),
            "opposites": from_table(OPPOSITES, "What is the opposite of \"{}\"?", rng),
            "animals": from_table(ANIMALS, "What kind of animal is a {}?", rng),
            "science": from_list(SCIENCE, rng)}
    for name, rows in sets.items():
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{name}: {len(rows)} questions")


if __name__ == "__main__":
    main()
