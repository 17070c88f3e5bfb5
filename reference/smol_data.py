"""The made data of the real-model task (reference/smol.py): chat prompts and a plain English text, nothing fetched.

Prompts are every template applied to every topic (600 of them), shuffled once with a fixed seed and cut into
disjoint splits. The text is the retained skill's: next-token prediction on plain prose that no OPD prompt trains.
"""

from __future__ import annotations

import random

TEMPLATES = (
    "What is {}?",
    "Explain {} in one sentence.",
    "Give me one interesting fact about {}.",
    "Why do people care about {}?",
    "Write a short sentence about {}.",
    "How would you describe {} to a child?",
    "What is a common mistake people make about {}?",
    "Give one tip for someone new to {}.",
    "What is the history of {} in a few words?",
    "Compare {} with something similar.",
)

TOPICS = (
    "the moon",
    "coffee",
    "a bicycle",
    "rain",
    "the ocean",
    "music",
    "a library",
    "chess",
    "volcanoes",
    "bread",
    "honey bees",
    "the internet",
    "gardening",
    "a lighthouse",
    "winter",
    "photosynthesis",
    "the piano",
    "maps",
    "recycling",
    "sleep",
    "the Roman Empire",
    "electric cars",
    "tea",
    "mountains",
    "friendship",
    "the stock market",
    "penguins",
    "a thunderstorm",
    "soap",
    "the printing press",
    "yoga",
    "clouds",
    "a compass",
    "cheese",
    "rivers",
    "public speaking",
    "the human heart",
    "solar panels",
    "dinosaurs",
    "a marathon",
    "paper",
    "the alphabet",
    "vaccines",
    "a rainbow",
    "cooking rice",
    "the desert",
    "a telescope",
    "saving money",
    "owls",
    "glass",
    "the Olympic Games",
    "a good night's sleep",
    "earthquakes",
    "chocolate",
    "learning a language",
    "trains",
    "the color blue",
    "a museum",
    "wind turbines",
    "board games",
)

#: Plain prose on general subjects, written for this project: the retained skill is next-token accuracy on it.
TEXT = """\
The sun rises in the east and sets in the west. Each day it crosses the sky, and its light warms the land and the sea.
Plants use that light to turn water and carbon dioxide into sugar, and they release oxygen into the air. Animals
breathe the oxygen and eat the plants, or eat the animals that eat them. In this way energy from the sun flows
through every living thing on Earth.

Water moves in a cycle. It evaporates from oceans, lakes and rivers, rises as vapour, and cools into clouds. When the
droplets in a cloud grow heavy enough, they fall as rain or snow. Some of the water soaks into the ground and some
runs off into streams, which carry it back to the sea. The same water has moved around this cycle for billions of
years.

A city is a place where many people live and work close together. It has streets and houses, shops and schools,
parks and hospitals. People travel across a city by bus, by train, by car or on foot. Cities grew up near rivers and
coasts, where trade was easy and water was plentiful. Today more than half of the people in the world live in one.

Learning a new skill takes time and practice. At first every step feels slow and uncertain. With each attempt the
mind builds new connections, and tasks that were once hard become easy. Good teachers break a skill into small parts,
give clear examples, and let students practise each part before they put the parts together.

The history of writing began with simple marks on clay and stone. Early scribes drew pictures to stand for objects,
and over many centuries those pictures became symbols for sounds. An alphabet uses a small set of letters to write
every word of a language. Printing made books cheap, and cheap books spread reading to millions of people.

A healthy diet includes fruit and vegetables, whole grains, and enough water. Regular exercise strengthens the heart
and the muscles, and a good night's sleep helps the body recover. Doctors advise people to walk, to rest, and to eat
a variety of foods rather than too much of any one thing.

Music is made of rhythm, melody and harmony. A rhythm is a pattern of beats in time. A melody is a line of notes that
rise and fall, and harmony is the sound of several notes played together. People in every culture sing and play
instruments, at festivals, at work, and at home with their families.

Computers follow instructions written in programming languages. A program tells the computer what to do, step by
step, and the computer carries out those steps very quickly. Programmers test their programs to find mistakes, which
they call bugs, and fix them before other people use the software.
"""


def prompts(seed: int = 0) -> list[str]:
    """Every template applied to every topic, shuffled with `seed`."""
    rows = [template.format(topic) for topic in TOPICS for template in TEMPLATES]
    random.Random(seed).shuffle(rows)
    return rows
