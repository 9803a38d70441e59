"""Word lists for the demo judge data (`demo_data.py`): titles, their translations, the judge's wording.

Plain data, kept apart so the generator reads as logic. Translated items are (english, zh-cn, ru-ru),
indexed with `1 + language index`. A noun carries, per language, the term model_a uses, the term
model_b uses and a wrong term, so the two models differ and a key-word error (criterion 6) quotes a
real wrong word.
"""

from typing import NamedTuple

from tqc_dagster.core.judge_prompt import JUDGE_SYSTEM_PROMPT, JUDGE_USER_PROMPT


class Category(NamedTuple):
    name: str  # as in the Amazon Reviews 2023 file name meta_<name>.jsonl
    share: float  # of all records: categories are deliberately uneven
    brands: tuple[str, ...]
    # (english, (zh_a, zh_b, zh_wrong), (ru_a, ru_b, ru_wrong), sizes as (quantity, unit key of UNITS))
    nouns: tuple[tuple, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("Home_and_Kitchen", 0.21, ("Lodge", "OXO", "Cuisinart", "Rubbermaid", "Pyrex", "Zwilling"), (
        ("Cast Iron Skillet", ("铸铁煎锅", "铸铁平底锅", "铸铁炒勺"), ("чугунная сковорода", "сковорода из чугуна", "чугунная кастрюля"), (("10", "Inch"), ("12", "Inch"))),
        ("Measuring Cups", ("量杯", "量杯套装", "水杯"), ("мерные стаканы", "мерные чашки", "кофейные чашки"), (("4", "Piece"), ("7", "Piece"))),
        ("Food Storage Containers", ("食品储存容器", "保鲜盒", "垃圾桶"), ("контейнеры для хранения продуктов", "контейнеры для еды", "мусорные баки"), (("24", "Piece"), ("1.5", "Quart"))),
        ("Chef Knife", ("厨师刀", "主厨刀", "剪刀"), ("поварской нож", "нож шеф-повара", "ножницы"), (("8", "Inch"), ("6", "Inch"))),
        ("Glass Baking Dish", ("玻璃烤盘", "玻璃烘焙盘", "玻璃杯"), ("стеклянная форма для запекания", "форма для запекания из стекла", "стеклянный стакан"), (("3", "Quart"), ("2", "Pack"))),
        ("Salad Spinner", ("沙拉脱水器", "蔬菜甩干器", "洗衣机"), ("сушилка для салата", "центрифуга для зелени", "стиральная машина"), (("5", "Quart"), ("2.5", "Quart"))),
    )),
    Category("Clothing_Shoes_and_Jewelry", 0.17, ("Hanes", "Levi's", "Columbia", "Skechers", "Carhartt", "Pandora"), (
        ("Crew Neck T-Shirt", ("圆领T恤", "圆领短袖T恤", "衬衫"), ("футболка с круглым вырезом", "футболка с круглой горловиной", "рубашка"), (("6", "Pack"), ("3", "Pack"))),
        ("Running Shoes", ("跑步鞋", "跑鞋", "拖鞋"), ("беговые кроссовки", "кроссовки для бега", "тапочки"), (("1", "Pair"),)),
        ("Ankle Socks", ("船袜", "短袜", "丝袜"), ("носки до щиколотки", "короткие носки", "чулки"), (("12", "Pack"), ("6", "Pack"))),
        ("Fleece Jacket", ("抓绒夹克", "摇粒绒外套", "羽绒服"), ("флисовая куртка", "куртка из флиса", "пуховик"), (("1", "Count"), ("2", "Pack"), ("3", "Pack"))),
        ("Sterling Silver Necklace", ("纯银项链", "925银项链", "银手镯"), ("ожерелье из стерлингового серебра", "серебряное колье", "серебряный браслет"), (("18", "Inch"), ("20", "Inch"))),
        ("Work Pants", ("工装裤", "工作裤", "睡裤"), ("рабочие брюки", "брюки для работы", "пижамные брюки"), (("2", "Pack"), ("32", "Inch"))),
    )),
    Category("Electronics", 0.14, ("Anker", "Sony", "Logitech", "SanDisk", "JBL", "Belkin"), (
        ("USB-C Charging Cable", ("USB-C充电线", "USB-C数据线", "USB-C耳机"), ("зарядный кабель USB-C", "кабель USB-C для зарядки", "наушники USB-C"), (("6", "ft"), ("10", "ft"), ("2", "Pack"))),
        ("Wireless Mouse", ("无线鼠标", "无线滑鼠", "无线键盘"), ("беспроводная мышь", "мышь беспроводная", "беспроводная клавиатура"), (("1", "Count"), ("2", "Pack"))),
        ("Bluetooth Speaker", ("蓝牙音箱", "蓝牙扬声器", "蓝牙耳机"), ("Bluetooth-колонка", "портативная колонка Bluetooth", "Bluetooth-наушники"), (("20", "W"), ("1", "Count"))),
        ("Memory Card", ("存储卡", "内存卡", "信用卡"), ("карта памяти", "карточка памяти", "кредитная карта"), (("128", "GB"), ("256", "GB"), ("2", "Pack"))),
        ("Noise Cancelling Headphones", ("降噪耳机", "主动降噪耳机", "助听器"), ("наушники с шумоподавлением", "шумоподавляющие наушники", "слуховой аппарат"), (("1", "Count"), ("40", "Hours"))),
        ("Power Strip", ("电源插排", "插线板", "电源线"), ("сетевой фильтр", "удлинитель", "кабель питания"), (("6", "ft"), ("12", "Outlet"))),
    )),
    Category("Health_and_Household", 0.11, ("Nature Made", "Amazon Basics", "Lysol", "Clorox", "Centrum", "Seventh Generation"), (
        ("Vitamin D3 Softgels", ("维生素D3软胶囊", "维生素D3软胶囊", "维生素C片"), ("витамин D3 в мягких капсулах", "мягкие капсулы витамина D3", "таблетки витамина C"), (("120", "Count"), ("60", "Count"))),
        ("Disinfecting Wipes", ("消毒湿巾", "杀菌湿巾", "卸妆湿巾"), ("дезинфицирующие салфетки", "антибактериальные салфетки", "салфетки для снятия макияжа"), (("80", "Count"), ("3", "Pack"))),
        ("Laundry Detergent", ("洗衣液", "洗衣剂", "洗洁精"), ("средство для стирки", "жидкое средство для стирки", "средство для мытья посуды"), (("64", "oz"), ("100", "oz"))),
        ("Hand Soap", ("洗手液", "洗手皂液", "沐浴露"), ("жидкое мыло для рук", "мыло для рук", "гель для душа"), (("500", "ml"), ("7.5", "oz"))),
        ("Multivitamin Tablets", ("复合维生素片", "多种维生素片", "止痛片"), ("мультивитамины в таблетках", "таблетки мультивитаминов", "обезболивающие таблетки"), (("200", "Count"), ("100", "Count"))),
        ("Trash Bags", ("垃圾袋", "垃圾袋", "购物袋"), ("мешки для мусора", "мусорные пакеты", "пакеты для покупок"), (("13", "Gallon"), ("90", "Count"))),
    )),
    Category("Sports_and_Outdoors", 0.09, ("Coleman", "Hydro Flask", "Gaiam", "CamelBak", "Bowflex", "YETI"), (
        ("Insulated Water Bottle", ("保温水壶", "保温水杯", "热水袋"), ("термобутылка", "изолированная бутылка для воды", "грелка"), (("32", "oz"), ("24", "oz"))),
        ("Yoga Mat", ("瑜伽垫", "瑜伽垫子", "地毯"), ("коврик для йоги", "йога-коврик", "ковер"), (("6", "mm"), ("4", "mm"))),
        ("Camping Tent", ("露营帐篷", "野营帐篷", "遮阳伞"), ("туристическая палатка", "палатка для кемпинга", "зонт от солнца"), (("4", "Person"), ("2", "Person"))),
        ("Adjustable Dumbbells", ("可调节哑铃", "可调哑铃", "杠铃"), ("регулируемые гантели", "гантели с регулировкой веса", "штанга"), (("52.5", "lb"), ("25", "lb"))),
        ("Resistance Bands", ("阻力带", "弹力带", "橡皮筋"), ("эспандеры", "ленты сопротивления", "резинки для волос"), (("5", "Pack"), ("11", "Piece"))),
        ("Sleeping Bag", ("睡袋", "露营睡袋", "枕头"), ("спальный мешок", "спальник", "подушка"), (("1", "Count"), ("2", "Pack"))),
    )),
    Category("Toys_and_Games", 0.08, ("LEGO", "Hasbro", "Mattel", "Crayola", "Ravensburger", "Fisher-Price"), (
        ("Building Blocks Set", ("积木套装", "拼搭积木套装", "拼图"), ("набор строительных блоков", "конструктор", "пазл"), (("1000", "Piece"), ("500", "Piece"))),
        ("Jigsaw Puzzle", ("拼图", "拼图游戏", "积木"), ("пазл", "головоломка-пазл", "конструктор"), (("1000", "Piece"), ("500", "Piece"))),
        ("Washable Markers", ("可水洗马克笔", "可洗水彩笔", "荧光笔"), ("смываемые маркеры", "моющиеся фломастеры", "текстовыделители"), (("10", "Count"), ("24", "Count"))),
        ("Board Game", ("桌游", "棋盘游戏", "电子游戏"), ("настольная игра", "семейная настольная игра", "видеоигра"), (("1", "Count"), ("2", "Pack"))),
        ("Die-Cast Car", ("合金车模", "压铸玩具车", "遥控车"), ("литая модель машинки", "металлическая машинка", "радиоуправляемая машина"), (("5", "Pack"), ("20", "Pack"))),
        ("Plush Toy", ("毛绒玩具", "毛绒公仔", "塑料玩具"), ("мягкая игрушка", "плюшевая игрушка", "пластиковая игрушка"), (("12", "Inch"), ("8", "Inch"))),
    )),
    Category("Grocery_and_Gourmet_Food", 0.08, ("Starbucks", "Lavazza", "KIND", "Planters", "Twinings", "McCormick"), (
        ("Whole Bean Coffee", ("咖啡豆", "整粒咖啡豆", "速溶咖啡"), ("кофе в зернах", "зерновой кофе", "растворимый кофе"), (("12", "oz"), ("2.2", "lb"))),
        ("Green Tea Bags", ("绿茶包", "绿茶茶包", "红茶包"), ("зеленый чай в пакетиках", "пакетированный зеленый чай", "черный чай в пакетиках"), (("100", "Count"), ("25", "Count"))),
        ("Mixed Nuts", ("混合坚果", "什锦坚果", "花生"), ("ореховая смесь", "смесь орехов", "арахис"), (("30", "oz"), ("1", "lb"))),
        ("Granola Bars", ("燕麦棒", "格兰诺拉麦片棒", "巧克力棒"), ("батончики гранола", "злаковые батончики", "шоколадные батончики"), (("12", "Count"), ("6", "Pack"))),
        ("Ground Black Pepper", ("黑胡椒粉", "研磨黑胡椒", "辣椒粉"), ("молотый черный перец", "черный перец молотый", "молотый красный перец"), (("3", "oz"), ("250", "g"))),
        ("Olive Oil", ("橄榄油", "特级初榨橄榄油", "菜籽油"), ("оливковое масло", "масло оливковое", "рапсовое масло"), (("500", "ml"), ("1", "l"))),
    )),
    Category("Pet_Supplies", 0.07, ("Purina", "KONG", "Blue Buffalo", "Frisco", "PetSafe", "Greenies"), (
        ("Dry Dog Food", ("干狗粮", "狗干粮", "猫粮"), ("сухой корм для собак", "сухой собачий корм", "корм для кошек"), (("30", "lb"), ("15", "lb"))),
        ("Chew Toy", ("磨牙玩具", "耐咬玩具", "毛绒玩具"), ("игрушка-жевалка", "жевательная игрушка", "плюшевая игрушка"), (("1", "Count"), ("3", "Pack"))),
        ("Cat Litter", ("猫砂", "猫砂", "狗窝"), ("наполнитель для кошачьего туалета", "кошачий наполнитель", "лежанка для собак"), (("20", "lb"), ("40", "lb"))),
        ("Dental Treats", ("洁齿零食", "洁牙零食", "狗粮"), ("лакомства для чистки зубов", "дентальные лакомства", "сухой корм"), (("36", "Count"), ("12", "oz"))),
        ("Dog Leash", ("狗绳", "遛狗绳", "狗项圈"), ("поводок для собак", "собачий поводок", "ошейник для собак"), (("6", "ft"), ("4", "ft"))),
        ("Pet Bed", ("宠物床", "宠物窝", "宠物笼"), ("лежанка для питомцев", "кровать для животных", "клетка для животных"), (("30", "Inch"), ("36", "Inch"))),
    )),
    Category("All_Beauty", 0.05, ("Neutrogena", "CeraVe", "L'Oreal", "Olay", "Revlon", "Maybelline"), (
        ("Facial Cleanser", ("洁面乳", "洗面奶", "卸妆水"), ("очищающее средство для лица", "гель для умывания", "мицеллярная вода"), (("16", "oz"), ("236", "ml"))),
        ("Moisturizing Cream", ("保湿霜", "保湿面霜", "防晒霜"), ("увлажняющий крем", "крем увлажняющий", "солнцезащитный крем"), (("1.7", "oz"), ("50", "ml"))),
        ("Hair Dryer Brush", ("吹风梳", "热风梳", "卷发棒"), ("фен-щетка", "расческа-фен", "плойка"), (("1", "Count"), ("2.4", "Inch"))),
        ("Mascara", ("睫毛膏", "睫毛液", "眼线笔"), ("тушь для ресниц", "тушь", "подводка для глаз"), (("0.3", "oz"), ("2", "Pack"))),
        ("Lip Balm", ("润唇膏", "护唇膏", "口红"), ("бальзам для губ", "гигиеническая помада", "губная помада"), (("0.15", "oz"), ("4", "Pack"))),
        ("Shampoo", ("洗发水", "洗发露", "护发素"), ("шампунь", "шампунь для волос", "кондиционер"), (("3.5", "oz"), ("500", "ml"))),
    )),
)

# unit key: (english format, zh-cn, ru-ru)
UNITS: dict[str, tuple[str, str, str]] = {
    "Inch": ("{q} Inch", "英寸", "дюймов"),
    "Pack": ("{q} Pack", "件装", "шт. в упаковке"),
    "Piece": ("{q} Piece", "件", "предметов"),
    "Count": ("{q} Count", "个", "шт."),
    "ml": ("{q}ml", "毫升", "мл"),
    "oz": ("{q} oz", "盎司", "унций"),
    "lb": ("{q} lb", "磅", "фунтов"),
    "ft": ("{q} ft", "英尺", "футов"),
    "g": ("{q}g", "克", "г"),
    "GB": ("{q}GB", "GB", "ГБ"),
    "Quart": ("{q} Quart", "夸脱", "кварты"),
    "mm": ("{q}mm", "毫米", "мм"),
    "l": ("{q}L", "升", "л"),
    "Pair": ("{q} Pair", "双", "пара"),
    "W": ("{q}W", "瓦", "Вт"),
    "Hours": ("{q} Hours Playtime", "小时续航", "часов работы"),
    "Outlet": ("{q} Outlet", "插位", "розеток"),
    "Gallon": ("{q} Gallon", "加仑", "галлонов"),
    "Person": ("{q} Person", "人", "чел."),
}

# Descriptors that fit any product, so a title never reads "Stainless Steel Shampoo".
DESCRIPTORS: tuple[tuple[str, str, str], ...] = (
    ("Premium", "优质", "премиум-класса"),
    ("Classic", "经典", "в классическом стиле"),
    ("Professional", "专业", "профессионального уровня"),
    ("Everyday", "日常", "для повседневного использования"),
)

# Title suffixes with unescaped markup characters; the first three cover '&', '<' and '>'.
SPECIALS: tuple[tuple[str, str, str], ...] = (
    ("Black & White", "黑白", "черно-белый"),
    ("<2m>", "<2米>", "<2 м>"),
    ("> 50 Uses", "> 50次使用", "> 50 применений"),
    ("Bath & Body", "沐浴和身体护理", "для ванны и тела"),
    ("Ages 3 & Up", "3岁及以上", "от 3 лет"),
    ("<Upgraded>", "<升级版>", "<улучшенная версия>"),
    ("Size >10", "尺寸 >10", "размер >10"),
    ("Salt & Pepper", "盐和胡椒", "соль и перец"),
)
TITLE_SIZE_SEPARATORS = (", ", " ", " - ")

# Per language, for (model_a, model_b): the translation template and how each writes a descriptor
# and a size. Russian descriptors are invariant phrases after the noun, so no gender agreement is needed.
LANGUAGE_NAMES = ("Chinese", "Russian")
TEMPLATES = (
    ("{prefix}{brand}{mark} {desc}{noun} {size}{special}{added}", "{prefix}{brand}{mark} {size}{desc}{noun}{special}{added}"),
    ("{prefix}{noun} {desc}{brand}{mark} {size}{special}{added}", "{prefix}{brand}{mark}: {noun}{desc}, {size}{special}{added}"),
)
DESCRIPTOR_FORMATS = (("{d}", "{d}"), ("{d} ", " {d}"))
SIZE_FORMATS = (("{q} {u}", "{q}{u}"), ("{q} {u}", "{q} {u}"))

# The concrete flaws a low score stands for, as they appear in a translation.
REFUSALS = ("[无法翻译]", "[перевод невозможен]")  # criterion 0
ADDED_WORDS = (" 热销爆款", " хит продаж")  # criterion 2
STRAY_SYMBOL = "※"  # criterion 3
LIST_PREFIXES = ("1. ", "• ", "- ")  # criterion 5

BAD_TRANSLATION_KINDS = ("missing", "empty", "none")

CRITERION_LABELS = (
    "Refusal", "Non-target language", "Added words", "Spelling and symbols",
    "Quantities and units", "Format", "Key word choice",
)
FLAW_REASONS = (
    "it replaces '{noun_en}' with '{noun_tr}' instead of translating it",
    "the English word '{noun_tr}' is left untranslated",
    "it adds '{added}', which is not in the source",
    "a stray symbol '{symbol}' follows '{brand}'",
    "the quantity '{size_en}' became '{size_tr}'",
    "it adds a leading '{prefix}' that the source does not have",
    "'{noun_en}' is rendered as '{noun_tr}', which names a different product",
)
SOFT_REASONS = (
    "part of the title is toned down rather than translated in full",
    "'{noun_tr}' reads like a transliteration rather than natural {lang_name}",
    "the wording around '{noun_tr}' is slightly redundant",
    "the punctuation and spacing are slightly unnatural",
    "the unit in '{size_tr}' is rendered less precisely than '{size_en}'",
    "the separators differ slightly from the source format",
    "'{noun_tr}' for '{noun_en}' is understandable but not the most natural term",
)
FLAWLESS_THOUGHTS = (
    "Accurate and fluent: the brand '{brand}', the quantity '{size_en}' and the key terms are all preserved.",
    "The translation is accurate and fluent {lang_name}; there is no issue on any criterion.",
    "Faithful and natural: '{noun_en}' is rendered as '{noun_tr}' and '{size_en}' is kept exactly.",
)
OTHERWISE = ("Otherwise accurate and fluent.", "The rest of the title is translated faithfully.")
EMPTY_TRANSLATION_THOUGHT = "The translation is missing or empty, so nothing of the source is conveyed."
THINKING = (
    "Let me go through the rubric for each translation. Translation 1: {t1} "
    "Translation 2: {t2} Now I will write the seven scores for each in rubric order."
)
LOOPING_PHRASE = "Let me re-check the key terms once more."
FENCE_PROSE = (
    "Note: the second translation keeps the brand in Latin script [sic], which is expected for product titles.",
    "Note: scores follow the rubric order [criteria 0-6]; translation 2 reads slightly more naturally.",
    "Both translations were judged independently [see the thoughts above].",
)
NOT_JSON_REPLIES = (
    "I cannot evaluate this.",
    "I'm sorry, but I can't evaluate these translations without more context about the product.",
    "Both translations are acceptable and convey the meaning of the title.",
)
BATCH_ERRORS = (
    (400, "Malformed input request, please reformat your input and try again."),
    (400, "ValidationException: The model returned an invalid response. Try your request again."),
    (400, "ModelTimeoutException: Model has timed out in processing the request. Try your request again."),
    (429, "ThrottlingException: Too many requests, please wait before trying again."),
    (500, "InternalServerException: The system encountered an unexpected error during processing. Try your request again."),
)
BLANK_LINES = ("", "   ", "\t", " \t ")

# The judge prompt the demo's batch outputs carry: the real jobs' (core/judge_prompt.py).
SYSTEM_PROMPT, USER_PROMPT = JUDGE_SYSTEM_PROMPT, JUDGE_USER_PROMPT
