"""What the synthetic world is made of: categories, names, rhythms and personas.

Plain constants (no randomness): the generator draws from these, and ``truth.json``
repeats the ones an analysis can be checked against (category rhythms, personas).
"""

from __future__ import annotations

import numpy as np

#: Establishment (and ad) categories, in a fixed order: arrays index categories by it.
CATEGORIES: tuple[str, ...] = (
    "restaurant",
    "bar",
    "cafe",
    "hotel",
    "supermarket",
    "pharmacy",
    "gym",
    "clothing",
    "electronics",
    "cinema",
)
N_CATEGORIES = len(CATEGORIES)
CATEGORY_INDEX: dict[str, int] = {c: i for i, c in enumerate(CATEGORIES)}

#: Share of each category among establishments.
ESTABLISHMENT_SHARE = np.array([0.22, 0.12, 0.13, 0.05, 0.08, 0.09, 0.07, 0.13, 0.08, 0.03])

#: Share of each category among (non always-on) campaigns.
CAMPAIGN_SHARE = np.array([0.20, 0.10, 0.10, 0.08, 0.10, 0.08, 0.08, 0.12, 0.10, 0.04])

#: Name prefixes per category (Portuguese flavour: the default city is Recife).
NAME_PREFIXES: dict[str, tuple[str, ...]] = {
    "restaurant": ("Restaurante", "Cantina", "Bistrô", "Churrascaria", "Cozinha", "Sabor"),
    "bar": ("Bar", "Boteco", "Choperia", "Pub", "Bar e Petiscaria"),
    "cafe": ("Café", "Cafeteria", "Padaria", "Empório do Café"),
    "hotel": ("Hotel", "Pousada", "Hostel", "Flat", "Resort"),
    "supermarket": ("Supermercado", "Mercado", "Mercadinho", "Atacarejo", "Hortifruti"),
    "pharmacy": ("Farmácia", "Drogaria", "Farma"),
    "gym": ("Academia", "Studio Fit", "Box", "Academia Corpo"),
    "clothing": ("Boutique", "Moda", "Loja", "Ateliê", "Outlet"),
    "electronics": ("Eletrônicos", "Tecno", "Celulares", "Info Shop", "Digital"),
    "cinema": ("Cine", "Cinemas", "Cineteatro"),
}

#: Second words of names.
NAME_WORDS: tuple[str, ...] = (
    "Sol",
    "Mar",
    "Central",
    "Estrela",
    "Jardim",
    "Praia",
    "Bela Vista",
    "São João",
    "Aurora",
    "Boa Vista",
    "Primavera",
    "Atlântico",
    "Brisa",
    "Maré",
    "Coqueiral",
    "do Cais",
    "da Ponte",
    "Alegria",
    "Imperial",
    "Nova Era",
    "do Bairro",
    "da Esquina",
    "Dona Maria",
    "Seu João",
    "Frevo",
    "Maracatu",
    "Capibaribe",
    "Olinda",
    "Veneza",
    "Recanto",
    "Paraíso",
    "Horizonte",
    "Boa Sorte",
    "Girassol",
    "Lua Cheia",
    "Cidade",
    "Família",
    "Popular",
    "Premium",
    "Express",
)

#: Campaign themes (names are "<theme> <category> #<n>").
CAMPAIGN_THEMES: tuple[str, ...] = (
    "Summer Deals",
    "Happy Hour",
    "Weekend Special",
    "Grand Opening",
    "Loyalty Week",
    "Flash Sale",
    "Carnival",
    "Back to School",
    "Night Out",
    "Healthy Start",
    "Family Days",
    "Tourist Season",
)


def _rhythm(peaks: tuple[tuple[float, float, float], ...], base: float) -> np.ndarray:
    """24 hourly weights: ``base`` plus circular gaussian bumps (centre h, width h, amplitude)."""
    hours = np.arange(24) + 0.5
    w = np.full(24, base)
    for centre, width, amp in peaks:
        d = np.abs(hours - centre)
        d = np.minimum(d, 24.0 - d)
        w += amp * np.exp(-0.5 * (d / width) ** 2)
    return w / w.sum()


#: Local-time rhythm of each category (rows follow CATEGORIES, 24 columns sum to 1):
#: when its establishments are visited and when its ads catch attention.
CATEGORY_RHYTHM: np.ndarray = np.stack(
    [
        _rhythm(((12.5, 1.2, 1.0), (20.0, 1.5, 0.9)), 0.03),  # restaurant
        _rhythm(((22.5, 2.2, 1.0), (18.0, 1.0, 0.4)), 0.02),  # bar
        _rhythm(((8.0, 1.5, 1.0), (15.5, 1.5, 0.6)), 0.02),  # cafe
        _rhythm(((14.0, 3.0, 0.5), (21.0, 3.0, 0.6)), 0.10),  # hotel
        _rhythm(((11.0, 2.0, 0.5), (18.5, 2.0, 1.0)), 0.03),  # supermarket
        _rhythm(((10.0, 3.0, 0.7), (19.0, 3.0, 0.7)), 0.08),  # pharmacy
        _rhythm(((6.5, 1.2, 1.0), (19.0, 1.5, 1.0)), 0.02),  # gym
        _rhythm(((16.0, 3.0, 1.0), (11.0, 1.5, 0.4)), 0.01),  # clothing
        _rhythm(((15.0, 3.0, 1.0),), 0.01),  # electronics
        _rhythm(((20.5, 2.0, 1.0), (16.0, 1.5, 0.5)), 0.01),  # cinema
    ]
)

#: When people open the app while at home or at work (local hour weights).
APP_USAGE_RHYTHM: np.ndarray = _rhythm(((8.0, 1.5, 0.8), (12.5, 1.5, 0.7), (21.0, 2.5, 1.0)), 0.03)

#: Median dwell time at an establishment of each category, in minutes.
DWELL_MINUTES = np.array([60.0, 110.0, 30.0, 360.0, 30.0, 12.0, 70.0, 35.0, 35.0, 140.0])
#: Typical gap between pings while dwelling (the phone is idle in a pocket), in seconds.
DWELL_PING_GAP_S = np.array(
    [810.0, 900.0, 630.0, 2700.0, 540.0, 360.0, 900.0, 630.0, 630.0, 1350.0]
)

# --- Personas: the generating parameters behind questions 5 and 6.
#: name -> (share of users, favourite per period [night, morning, afternoon, evening],
#:          favourite per weekday [Mon..Sun], secondary interests)
PERSONAS: dict[str, tuple[float, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "foodie": (
        0.18,
        ("restaurant", "cafe", "restaurant", "restaurant"),
        ("restaurant", "cafe", "restaurant", "cafe", "restaurant", "bar", "restaurant"),
        ("cafe", "bar", "supermarket"),
    ),
    "nightlife": (
        0.14,
        ("bar", "cafe", "restaurant", "bar"),
        ("cafe", "restaurant", "bar", "bar", "bar", "bar", "restaurant"),
        ("restaurant", "cinema", "clothing"),
    ),
    "fitness": (
        0.12,
        ("pharmacy", "gym", "supermarket", "gym"),
        ("gym", "gym", "supermarket", "gym", "gym", "cafe", "supermarket"),
        ("pharmacy", "cafe", "clothing"),
    ),
    "shopper": (
        0.14,
        ("clothing", "cafe", "clothing", "restaurant"),
        ("supermarket", "clothing", "cafe", "clothing", "clothing", "clothing", "cinema"),
        ("electronics", "cafe", "restaurant"),
    ),
    "family": (
        0.16,
        ("pharmacy", "supermarket", "pharmacy", "cinema"),
        (
            "supermarket",
            "pharmacy",
            "supermarket",
            "pharmacy",
            "supermarket",
            "cinema",
            "restaurant",
        ),
        ("restaurant", "clothing", "supermarket"),
    ),
    "business_traveller": (
        0.08,
        ("hotel", "cafe", "restaurant", "bar"),
        ("hotel", "hotel", "restaurant", "hotel", "bar", "restaurant", "cafe"),
        ("hotel", "restaurant", "electronics"),
    ),
    "tech_enthusiast": (
        0.10,
        ("electronics", "cafe", "electronics", "cinema"),
        ("electronics", "cafe", "electronics", "gym", "cinema", "electronics", "cinema"),
        ("cinema", "cafe", "electronics"),
    ),
    "student": (
        0.08,
        ("bar", "cafe", "cafe", "cinema"),
        ("cafe", "cafe", "restaurant", "cafe", "bar", "bar", "cinema"),
        ("bar", "restaurant", "gym"),
    ),
}
PERSONA_NAMES: tuple[str, ...] = tuple(PERSONAS)
PERSONA_SHARE = np.array([p[0] for p in PERSONAS.values()])

#: Weight of a persona's favourite (for ads by period, for places by weekday), of its
#: interests, and of every other category.
FAVOURITE_WEIGHT = 0.6
FAVOURITE_PLACE_WEIGHT = 1.0
INTEREST_WEIGHT = 0.12
BASE_WEIGHT = 0.04


def _persona_matrix(rows: int, pick: int, favourite: float) -> np.ndarray:
    out = np.full((len(PERSONAS), rows, N_CATEGORIES), BASE_WEIGHT)
    for p, (_, periods, weekdays, interests) in enumerate(PERSONAS.values()):
        favourites = (periods, weekdays)[pick]
        for c in interests:
            out[p, :, CATEGORY_INDEX[c]] += INTEREST_WEIGHT
        for r, c in enumerate(favourites):
            out[p, r, CATEGORY_INDEX[c]] += favourite
    return out


#: (persona, period, category) weights for ad interactions.
PERSONA_PERIOD_WEIGHTS: np.ndarray = _persona_matrix(4, 0, FAVOURITE_WEIGHT)
#: (persona, weekday, category) weights for establishment visits.
PERSONA_WEEKDAY_WEIGHTS: np.ndarray = _persona_matrix(7, 1, FAVOURITE_PLACE_WEIGHT)
