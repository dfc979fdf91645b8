"""Write the deterministic sample crawl under `data/samples/` (WARC + WET files and a README).

The sample looks like a small Common Crawl segment: each file opens with a warcinfo record and holds
request / response / metadata triples. Pages are real prose in seven languages wrapped in site
boilerplate, with near-duplicates, an exact duplicate, PII in running text, low-quality pages and one
malformed record of each kind the ingest stage must survive. Reruns with the same arguments write
byte-identical files: record ids and dates derive from the seed and a counter, and every gzip member
has a fixed header (no timestamp, OS byte 255).

    python scripts/make_sample_warc.py                     # data/samples/
    python scripts/make_sample_warc.py --scale 50 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import random
import struct
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

MAX_BODY_BYTES = 2_000_000  # the ingest stage's default limit; the too-large page goes just past it
START_DATE = datetime(2024, 3, 4, 10, 0, 0, tzinfo=timezone.utc)
CRAWL_FILES = 4

# --------------------------------------------------------------------------------------------------
# Prose. Each topic is (title, sentences); a page uses its topic's sentences in order, split into
# paragraphs, so pages read coherently. `--scale` pages mix sentences from all topics of a language.
# --------------------------------------------------------------------------------------------------

EN_TOPICS = {
    "sourdough": (
        "How I Learned to Bake Sourdough Bread at Home",
        [
            "When I first tried to bake sourdough bread, I had no idea how much patience the process would demand.",
            "A sourdough starter is simply a mixture of flour and water that has been left to ferment with wild yeast and bacteria.",
            "I fed mine every morning with equal weights of flour and water, and after about a week it began to rise and smell pleasantly sour.",
            "The first loaf I made was flat and dense, but it still tasted better than most of the bread I could buy in the shops.",
            "Over the following months I learned that the temperature of the kitchen matters more than the exact recipe.",
            "In the summer the dough rises quickly, so I shorten the first fermentation and keep a close eye on it.",
            "In the winter I put the bowl near the oven or wrap it in a towel to keep it warm enough.",
            "Folding the dough every half hour during the first two hours helps to build strength without the need for heavy kneading.",
            "Shaping the loaf is the step that takes the most practice, and I still ruin one now and then.",
            "Baking the bread in a heavy pot with the lid on traps the steam and gives the crust its deep color and crunch.",
            "After twenty minutes I take the lid off and let the loaf bake for another twenty-five minutes until it sounds hollow when tapped.",
            "The hardest part is waiting for the bread to cool before cutting it, because the inside keeps cooking for a while.",
            "If you are thinking about trying it yourself, start with a simple recipe and write down what you change each time.",
            "Baking bread has become a quiet weekend ritual in our house, and the whole family now looks forward to it.",
        ],
    ),
    "balcony": (
        "Growing Vegetables on a Small Balcony",
        [
            "You do not need a garden to grow some of your own food, and a sunny balcony can be surprisingly productive.",
            "The most important thing to check before you start is how many hours of direct sunlight the space gets each day.",
            "Tomatoes, peppers and most herbs need at least six hours of sun, while lettuce and spinach are happy with less.",
            "Choose containers that are as large as you can manage, because small pots dry out quickly on hot afternoons.",
            "Every pot must have holes in the bottom so that extra water can drain away and the roots do not rot.",
            "A good potting mix is worth the money, and you can improve it each spring with a little compost.",
            "Last year we grew cherry tomatoes, basil, mint and a few strawberry plants in a space of about four square meters.",
            "The tomatoes produced fruit from July until the first cold nights of October, which was far more than we expected.",
            "Mint spreads very quickly, so it is best to give it a pot of its own where it cannot crowd out the other plants.",
            "On windy days the taller plants need support, and a few bamboo canes tied with soft string are usually enough.",
            "Watering in the early morning or late evening means that less water is lost to the heat of the day.",
            "We also hung a small feeder for birds, and they have helped to keep the number of aphids under control.",
            "Growing food in such a small space will not feed a family, but it is a pleasant hobby that teaches you a lot about the seasons.",
        ],
    ),
    "cycling": (
        "Why I Started Cycling to Work",
        [
            "Two years ago I sold my car and decided to ride a bicycle to the office, which is about eight kilometers from my home.",
            "At first I was worried about the traffic, the weather and arriving at work tired and sweaty.",
            "In practice, most of those worries turned out to be much smaller than I had imagined.",
            "I found a quieter route along the river that adds only a few minutes to the journey and avoids the busiest roads.",
            "A good set of lights, a bright jacket and a pair of mudguards made the ride safer and far more comfortable.",
            "My employer has showers in the basement, so I bring a change of clothes on Monday and leave them in a locker for the week.",
            "The ride takes me about twenty-five minutes, which is roughly the same time it used to take by car in the morning rush.",
            "On rainy days I sometimes take the train instead, and I no longer feel guilty about it.",
            "The biggest change has been to my mood, because I now arrive at work awake and cheerful rather than stressed.",
            "I also save a considerable amount of money on fuel, parking and insurance every month.",
            "Learning to fix a flat tire by the side of the road was a useful skill that took only an afternoon to master.",
            "Several of my colleagues have started to cycle as well, and we sometimes ride home together on Fridays.",
            "If you are thinking about it, try the route once on a weekend when the roads are quiet and there is no pressure to be on time.",
        ],
    ),
    "eldersford": (
        "A Short History of the Market Town of Eldersford",
        [
            "Eldersford grew up around a shallow crossing of the river where farmers once brought their sheep to be sold.",
            "The first written record of the town is a charter from the thirteenth century that allowed a weekly market on Thursdays.",
            "For several hundred years the wool trade was the main source of wealth, and many of the oldest houses were built by merchants.",
            "The stone bridge that still carries traffic over the river was completed in 1742 after the old wooden one was swept away by a flood.",
            "When the railway arrived in the middle of the nineteenth century, the town grew quickly and new streets of brick houses appeared.",
            "A brewery, a tannery and a small iron foundry provided work for hundreds of families until the early twentieth century.",
            "Most of those industries closed between the two world wars, and the town slowly became quieter and poorer.",
            "In recent decades Eldersford has found a new role as a place for visitors who enjoy old buildings and walks by the water.",
            "The market still takes place every Thursday, although today it sells cheese, bread and flowers rather than sheep.",
            "The local museum, which is run by volunteers, has a fine collection of photographs of the town from the last hundred years.",
            "Many residents say that the sense of community is the thing they value most about living there.",
            "Anyone who visits should take the time to walk along the old towpath and look back at the town from the hill above the river.",
        ],
    ),
    "budget": (
        "A Simple Way to Plan a Household Budget",
        [
            "Many people avoid making a budget because they think it will be complicated or that it will take away all the fun of spending.",
            "In reality, a simple budget is just a plan that tells your money where to go before the month begins.",
            "Start by writing down everything that comes into the household each month after tax.",
            "Then list the fixed costs that you cannot easily change, such as rent, insurance, transport and the phone bill.",
            "The money that is left over has to cover food, clothing, presents, holidays and the many small expenses that are easy to forget.",
            "It helps to look at your bank statements for the last three months to see what you actually spend on each of these things.",
            "Most people are surprised by how much goes on coffee, snacks and subscriptions that they rarely use.",
            "Once you know the numbers, decide on a sensible amount for each category and try to stick to it for a month.",
            "Put aside a small sum for savings at the start of the month rather than waiting to see what is left at the end.",
            "If something goes wrong, such as a broken washing machine, adjust the plan rather than giving up on it altogether.",
            "Reviewing the budget together once a month is also a good way for couples to talk about money without arguing.",
            "After a few months the process becomes a habit, and many families find that they worry much less about money.",
        ],
    ),
    "tap": (
        "How to Fix a Dripping Kitchen Tap",
        [
            "A dripping tap is one of the most common problems in the home, and it can waste thousands of liters of water in a year.",
            "The good news is that most drips can be fixed in less than an hour with a few simple tools.",
            "Before you begin, turn off the water supply to the tap, which is usually controlled by a small valve under the sink.",
            "Open the tap to let out the water that is left in the pipe, and put the plug in the sink so that small parts cannot fall down the drain.",
            "Remove the decorative cap on the handle, undo the screw underneath it and lift the handle away.",
            "In an older tap you will find a rubber washer at the bottom of the valve, and a worn washer is the usual cause of a drip.",
            "Modern taps often use a ceramic cartridge instead, which has to be replaced as a whole unit.",
            "Take the old part with you to the hardware store so that you can be sure to buy one of the same size.",
            "Fit the new washer or cartridge, put the handle back on and turn the water supply on again slowly.",
            "If the tap still drips, the seat of the valve may be damaged and it might be time to call a plumber.",
            "Doing small repairs like this yourself saves money and gives you a better understanding of how your home works.",
        ],
    ),
    "hills": (
        "A Weekend of Walking in the Hills",
        [
            "Last weekend my sister and I took the early train north and spent two days walking in the hills.",
            "We started from a small village with a church, a post office and a bakery that sold the best apple cake I have ever eaten.",
            "The path climbed steadily through a beech forest before opening out onto a wide ridge covered in heather.",
            "From the top we could see three lakes, a long line of distant mountains and the smoke from farmhouses in the valley.",
            "The weather changed several times during the day, and we were glad that we had packed warm jackets and waterproof trousers.",
            "In the afternoon we followed a stream down to a youth hostel where we had booked two beds for the night.",
            "Dinner was a large bowl of soup with fresh bread, shared at a long table with walkers from all over the country.",
            "On the second day the clouds were low, so we chose a shorter route that stayed below the ridge.",
            "We saw deer in a clearing and heard the call of a buzzard circling high above the trees.",
            "By the time we reached the station our legs were tired, but we were already planning the next trip.",
            "Walking for a whole weekend without screens or deadlines is one of the simplest ways I know to feel rested.",
        ],
    ),
    "sleep": (
        "Small Changes That Helped Me Sleep Better",
        [
            "For several years I slept badly, waking up in the middle of the night and feeling tired for most of the next day.",
            "I tried many things, and in the end it was a handful of small changes that made the biggest difference.",
            "The first was to go to bed and get up at the same time every day, even at the weekend.",
            "It felt strange at first, but after two or three weeks my body began to feel sleepy at the right time in the evening.",
            "I also stopped drinking coffee after lunch, because caffeine can stay in the body for many hours.",
            "Looking at a phone in bed was a hard habit to break, so I started leaving it to charge in the kitchen overnight.",
            "Instead of scrolling, I now read a paper book for twenty minutes, which helps me to slow down and forget the worries of the day.",
            "Keeping the bedroom cool, dark and quiet is another simple step that many sleep experts recommend.",
            "A short walk outside in the morning light seems to help as well, especially during the dark winter months.",
            "None of these changes is dramatic, but together they have given me more energy than any supplement I have tried.",
            "If poor sleep continues for a long time, it is always a good idea to talk to a doctor about it.",
        ],
    ),
    "old_dog": (
        "Looking After an Older Dog",
        [
            "Our dog Bramble turned twelve this spring, and like many older dogs she has slowed down a great deal.",
            "She still enjoys her walks, but we now take her on several short outings a day instead of one long one.",
            "Older dogs often become stiff in the joints, so we bought her a thick bed that supports her back and hips.",
            "The vet suggested that we check her weight every month, because even a little extra weight puts strain on old joints.",
            "We changed her food to a diet made for senior dogs, which has fewer calories and is easier to digest.",
            "Her hearing is not as good as it used to be, so we have taught her a few simple hand signals.",
            "It is important to keep an older dog's mind active as well, and she loves puzzle toys that hide small treats.",
            "Regular visits to the vet help to catch problems early, especially with the teeth, the heart and the kidneys.",
            "We have also learned to be patient when she takes a long time to climb the stairs or get into the car.",
            "Caring for an old dog takes time and money, but the calm companionship she gives us makes it more than worth it.",
            "If you have a senior dog of your own, enjoy the slower pace and the quiet evenings together.",
        ],
    ),
    "piano": (
        "Learning the Piano as an Adult",
        [
            "I had always wanted to play the piano, and last year, at the age of forty-three, I finally started taking lessons.",
            "Many adults believe that it is too late to learn an instrument, but my teacher told me that this is simply not true.",
            "Adults often make faster progress than children at the beginning because they understand the theory more quickly.",
            "The difficult part is finding the time to practice when work and family take up most of the day.",
            "I now practice for twenty minutes every morning before breakfast, and that short daily session works better than one long one at the weekend.",
            "At first my hands refused to work independently, and playing a simple tune with both hands felt almost impossible.",
            "After a few months something changed, and the movements began to feel natural rather than forced.",
            "Learning to read music was slow, but it has opened up a huge world of songs and pieces that I can now try.",
            "My teacher chooses pieces that I enjoy, which keeps me motivated on the days when progress seems slow.",
            "Playing for my family at the end of the year was nerve-racking, but it was also one of the proudest moments of my life.",
            "If you have been thinking about learning an instrument, find a patient teacher and make a start this month.",
        ],
    ),
    "laptop": (
        "What to Check When Buying a Used Laptop",
        [
            "A used laptop can be an excellent way to save money, as long as you know what to look for before you pay.",
            "Start by checking the outside of the machine for cracks, loose hinges and signs that it has been dropped.",
            "Turn it on and make sure that it starts quickly and that the screen has no dead pixels or dark patches.",
            "Ask the seller how old the battery is and check how long it lasts while you test the computer.",
            "Try every port with a device of your own, and test the keyboard, the touchpad, the speakers and the camera.",
            "Connect to a wireless network and open a few web pages to be sure that the network card works properly.",
            "At home, the settings page of our router is at the address 192.168.1.1, and a quick test there showed that the laptop connected at full speed.",
            "A speed test site reported the public address 203.0.113.57 and a download rate that matched our contract.",
            "Check that the operating system is genuine and that it can still receive security updates.",
            "It is wise to reset the laptop to factory settings after you buy it, so that none of the previous owner's files remain.",
            "Finally, compare the price with new models, because a cheap new laptop is sometimes a better choice than an expensive old one.",
        ],
    ),
    "book_club": (
        "Our Neighbourhood Book Club Turns Five",
        [
            "Five years ago six neighbours met in a living room to talk about a novel that most of them had not finished.",
            "Today the club has more than twenty members, and we meet on the first Tuesday of every month in the back room of the library.",
            "We choose the books together, and over the years we have read crime stories, travel writing, poetry and classic novels.",
            "The discussions are friendly and often wander far away from the book, which is part of the fun.",
            "Some of our members are retired teachers, while others are students, nurses, builders and parents with young children.",
            "To celebrate the anniversary we are holding a small party with cake, music and a second-hand book sale.",
            "All the money raised from the sale will go to the children's reading program at the library.",
            "New members are always welcome, and you do not have to finish the book to come along and join the conversation.",
            "If you would like to join, please write to our organiser Margaret at margaret.hollis@example.org or call her on (415) 555-0132 in the evenings.",
            "You can also leave a message for the club at the library desk, and someone will get back to you within a few days.",
            "We look forward to meeting you and hearing what you think of our next book.",
        ],
    ),
    "community_centre": (
        "Spring Programme at the Riverside Community Centre",
        [
            "The Riverside Community Centre is pleased to announce its programme of classes and events for the coming spring.",
            "This season we are offering beginner courses in pottery, photography, conversational Spanish and first aid.",
            "There will also be a weekly cooking class for teenagers, where they will learn to prepare cheap and healthy meals.",
            "Most courses run for eight weeks and take place in the evenings, so that people who work during the day can attend.",
            "Places are limited, and we recommend that you book as soon as possible to avoid disappointment.",
            "To reserve a place, please contact the front desk on 020 7946 0321 from Monday to Friday between nine and five.",
            "You can also send an email to bookings@riverside-centre.example.com with your name, the course you would like to join and a phone number.",
            "Our partner centre in Lyon, which runs the language exchange, can be reached on +33 1 99 00 45 67 for questions about the trips to France.",
            "Visitors from the sister project in Sydney may call the coordinator on +61 491 570 156 before they travel.",
            "Discounts are available for students, pensioners and anyone who receives unemployment benefits.",
            "We are also looking for volunteers to help with the garden, the café and the children's holiday club.",
            "Thank you for supporting your local centre, and we hope to see you at one of our events this spring.",
        ],
    ),
}

DE_TOPICS = {
    "schwarzwald": (
        "Ein Wochenende im Schwarzwald",
        [
            "Im Oktober sind wir für ein langes Wochenende in den Schwarzwald gefahren, um endlich einmal abzuschalten.",
            "Unsere Pension lag in einem kleinen Dorf am Rand eines Tals, umgeben von dunklen Tannen und grünen Wiesen.",
            "Am ersten Morgen sind wir nach einem reichhaltigen Frühstück mit frischem Brot und Honig losgewandert.",
            "Der Weg führte uns an einem rauschenden Bach entlang und dann steil hinauf zu einem Aussichtsturm.",
            "Von oben konnten wir bei klarem Wetter bis zu den Alpen sehen, was uns der Wirt schon am Abend vorher versprochen hatte.",
            "Unterwegs haben wir in einer Hütte Rast gemacht und eine Suppe gegessen, die nach Kräutern und Rauch schmeckte.",
            "Am Nachmittag zog Nebel auf, und der Wald wirkte plötzlich still und ein wenig geheimnisvoll.",
            "Am Sonntag haben wir uns ein altes Bauernhaus angesehen, in dem heute ein kleines Museum über das Leben der Uhrmacher untergebracht ist.",
            "Die Frau an der Kasse erzählte uns, dass ihr Großvater noch Kuckucksuhren in der eigenen Werkstatt gebaut hat.",
            "Auf der Rückfahrt waren wir müde, aber sehr zufrieden und haben schon über den nächsten Besuch gesprochen.",
            "Wer Ruhe, Natur und gutes Essen sucht, findet im Schwarzwald zu jeder Jahreszeit ein lohnendes Ziel.",
        ],
    ),
    "naturgarten": (
        "Warum wir unseren Garten naturnah gestalten",
        [
            "Als wir vor drei Jahren unser Haus gekauft haben, bestand der Garten fast nur aus einem kurz gemähten Rasen.",
            "Heute wachsen dort Wildblumen, Beerensträucher und ein kleiner Teich, an dem im Sommer Libellen und Frösche leben.",
            "Ein naturnaher Garten braucht weniger Arbeit, als viele Menschen glauben, und er bietet Tieren einen wichtigen Lebensraum.",
            "Wir haben einen Teil des Rasens einfach wachsen lassen und nur noch zweimal im Jahr gemäht.",
            "Schon im ersten Sommer kamen viel mehr Bienen, Hummeln und Schmetterlinge zu uns als früher.",
            "Aus alten Ästen und Steinen haben wir einen Haufen gebaut, in dem sich Igel und Eidechsen verstecken können.",
            "Statt chemischer Mittel verwenden wir Kompost und lassen Vögel und Marienkäfer die Blattläuse fressen.",
            "Unsere Kinder beobachten gern die Tiere und haben dabei mehr über die Natur gelernt als aus jedem Buch.",
            "Im örtlichen Gartenverein tauschen wir Samen und Pflanzen mit anderen Familien aus der Nachbarschaft.",
            "Wer mitmachen möchte, erreicht den Verein unter der Telefonnummer 030 12345678 oder per E-Mail an garten@gartenfreunde.example.org.",
            "Auch ein kleiner Balkon kann mit ein paar heimischen Blumen zu einem Treffpunkt für Insekten werden.",
        ],
    ),
    "umzug": (
        "Tipps für den Umzug in eine neue Stadt",
        [
            "Ein Umzug in eine neue Stadt ist aufregend, aber er bringt auch viel Arbeit und manchmal ein wenig Einsamkeit mit sich.",
            "Beginnen Sie rechtzeitig mit der Planung und schreiben Sie eine Liste mit allen Aufgaben, die vor dem Umzug erledigt werden müssen.",
            "Dazu gehören die Kündigung der alten Wohnung, die Ummeldung beim Amt und die Änderung der Adresse bei Bank und Versicherung.",
            "Es lohnt sich, vor dem Packen gründlich auszumisten, denn jeder Karton, der nicht mitkommt, spart Zeit und Geld.",
            "Beschriften Sie die Kartons deutlich mit dem Inhalt und dem Zimmer, in das sie in der neuen Wohnung gehören.",
            "In den ersten Wochen hilft es, die Umgebung zu Fuß oder mit dem Fahrrad zu erkunden.",
            "So findet man schnell den nächsten Bäcker, eine gute Apotheke und vielleicht ein gemütliches Café.",
            "Um neue Menschen kennenzulernen, kann man einem Sportverein beitreten oder einen Kurs an der Volkshochschule besuchen.",
            "Viele Städte bieten außerdem Treffen für Neubürger an, bei denen man Tipps und Kontakte bekommt.",
            "Geben Sie sich selbst Zeit, denn es dauert oft ein paar Monate, bis sich ein fremder Ort wie ein Zuhause anfühlt.",
        ],
    ),
}

FR_TOPICS = {
    "marche": (
        "Le marché du samedi matin",
        [
            "Chaque samedi matin, la place de l'église se remplit de stands colorés et de voix qui appellent les clients.",
            "Les maraîchers arrivent avant le lever du soleil pour installer leurs caisses de légumes, de fruits et de fleurs.",
            "On y trouve des fromages de la région, du pain encore chaud et des œufs vendus par une famille qui élève ses poules en plein air.",
            "Ma grand-mère fréquentait déjà ce marché quand elle était jeune, et certains vendeurs se souviennent encore d'elle.",
            "J'aime prendre le temps de discuter avec les producteurs, qui donnent toujours de bons conseils pour cuisiner leurs produits.",
            "En automne, les stands se couvrent de champignons, de courges et de pommes de toutes les variétés.",
            "Les enfants attendent avec impatience le vendeur de crêpes, qui s'installe toujours près de la fontaine.",
            "Acheter au marché coûte parfois un peu plus cher qu'au supermarché, mais la qualité et la fraîcheur sont incomparables.",
            "C'est aussi un lieu de rencontre où l'on croise ses voisins, ses amis et parfois d'anciens camarades de classe.",
            "Vers midi, les vendeurs commencent à ranger, et la place retrouve peu à peu son calme habituel.",
            "Pour moi, ce rendez-vous hebdomadaire est devenu l'un des plus beaux moments de la semaine.",
        ],
    ),
    "nager": (
        "Apprendre à nager à quarante ans",
        [
            "Pendant longtemps, j'ai eu honte de dire que je ne savais pas nager.",
            "Enfant, j'avais peur de l'eau, et personne dans ma famille n'avait le temps de m'emmener à la piscine.",
            "L'année dernière, j'ai enfin décidé de m'inscrire à un cours pour adultes débutants dans la piscine de mon quartier.",
            "Le premier soir, j'étais très nerveux, mais j'ai vite compris que les autres élèves ressentaient exactement la même chose.",
            "Notre professeur nous a d'abord appris à respirer calmement et à faire confiance à l'eau qui nous porte.",
            "Après quelques semaines, j'ai réussi à flotter sur le dos sans paniquer, ce qui m'a semblé être une petite victoire.",
            "Ensuite, nous avons travaillé les mouvements des bras et des jambes, d'abord séparément puis ensemble.",
            "Il m'a fallu presque trois mois pour traverser la piscine sans m'arrêter, mais j'étais très fier ce jour-là.",
            "Aujourd'hui, je vais nager deux fois par semaine, et cette activité m'aide à rester en forme et à mieux dormir.",
            "Si vous avez le même problème, sachez qu'il n'est jamais trop tard pour apprendre et qu'il n'y a aucune honte à commencer.",
        ],
    ),
    "musee": (
        "Une journée au musée avec les enfants",
        [
            "Dimanche dernier, nous avons emmené nos deux enfants au musée d'histoire naturelle de la ville.",
            "J'avais un peu peur qu'ils s'ennuient, mais ils ont été fascinés dès l'entrée par le grand squelette de baleine.",
            "Le musée propose un livret de jeux gratuit, qui invite les enfants à chercher des animaux cachés dans les vitrines.",
            "Notre fille a passé une heure devant les minéraux, tandis que notre fils voulait tout savoir sur les dinosaures.",
            "Une guide très patiente a répondu à toutes leurs questions, même les plus étranges, avec le sourire.",
            "À midi, nous avons pique-niqué dans le jardin du musée, à l'ombre d'un très vieux cèdre.",
            "L'après-midi, un atelier permettait de fabriquer un moulage de fossile en plâtre à rapporter à la maison.",
            "Les enfants étaient si fiers de leur travail qu'ils ont voulu le montrer à leurs grands-parents le soir même.",
            "L'entrée est gratuite pour les moins de dix-huit ans, ce qui rend la sortie très abordable pour les familles.",
            "Nous reviendrons certainement cet hiver, car il reste encore beaucoup de salles que nous n'avons pas eu le temps de voir.",
        ],
    ),
}

ES_TOPICS = {
    "tortilla": (
        "Cómo preparar una buena tortilla de patatas",
        [
            "La tortilla de patatas es uno de los platos más sencillos y queridos de la cocina española.",
            "Solo necesitas patatas, huevos, aceite de oliva, sal y, si te gusta, un poco de cebolla.",
            "Pela las patatas, córtalas en láminas finas y fríelas a fuego lento en abundante aceite hasta que estén tiernas.",
            "Mientras tanto, bate los huevos en un cuenco grande con una pizca de sal.",
            "Cuando las patatas estén listas, escúrrelas bien y mézclalas con los huevos batidos.",
            "Deja reposar la mezcla unos minutos para que las patatas absorban parte del huevo.",
            "Calienta una sartén con muy poco aceite y vierte la mezcla, moviendo la sartén para que no se pegue.",
            "El momento más difícil es darle la vuelta, y para ello se usa un plato un poco más grande que la sartén.",
            "Hay quien prefiere la tortilla jugosa por dentro y quien la quiere bien cuajada, y las dos opciones son correctas.",
            "En mi familia siempre se discute si la tortilla debe llevar cebolla, y nunca llegamos a un acuerdo.",
            "Se puede comer caliente o fría, y es perfecta para llevar de excursión o para una cena rápida con amigos.",
        ],
    ),
    "valencia": (
        "Mi primer año viviendo en Valencia",
        [
            "Hace un año me mudé a Valencia por trabajo, sin conocer a nadie y con muy pocas cosas en la maleta.",
            "Lo primero que me sorprendió fue la luz, que hace que los colores de los edificios parezcan más vivos que en el norte.",
            "Alquilé un piso pequeño en el barrio de Ruzafa, que está lleno de cafeterías, tiendas de segunda mano y mercados.",
            "Los fines de semana me gusta ir en bicicleta por el antiguo cauce del río, que hoy es un enorme parque.",
            "En primavera viví por primera vez las Fallas, una fiesta llena de música, pólvora y enormes figuras de cartón.",
            "Al principio el ruido me pareció excesivo, pero al final entendí por qué los valencianos esperan esas fechas todo el año.",
            "También he aprendido a preparar una paella como la que hacen aquí, con pollo, conejo y judías verdes.",
            "Mis compañeros de trabajo me han ayudado mucho y algunos ya se han convertido en buenos amigos.",
            "Lo único que echo de menos es la lluvia y los bosques verdes de la zona donde crecí.",
            "Después de este primer año, puedo decir que me siento como en casa y que no tengo prisa por marcharme.",
        ],
    ),
    "energia": (
        "Consejos para ahorrar energía en casa",
        [
            "Ahorrar energía en casa no solo ayuda al medio ambiente, sino que también reduce las facturas cada mes.",
            "Uno de los cambios más fáciles es sustituir las bombillas antiguas por otras de bajo consumo.",
            "Conviene apagar por completo los aparatos electrónicos en lugar de dejarlos en espera durante toda la noche.",
            "En invierno, bajar la calefacción un solo grado puede suponer un ahorro importante a lo largo de la temporada.",
            "Cerrar las persianas por la noche ayuda a mantener el calor, y abrirlas durante el día permite aprovechar el sol.",
            "En verano ocurre lo contrario, y es mejor mantener la casa a la sombra durante las horas de más calor.",
            "La lavadora y el lavavajillas gastan menos si se ponen con carga completa y en programas de baja temperatura.",
            "Revisar las ventanas y las puertas para evitar corrientes de aire es una tarea sencilla que se nota mucho.",
            "Muchos ayuntamientos ofrecen ayudas para mejorar el aislamiento de las viviendas o instalar paneles solares.",
            "Con pequeños hábitos diarios, cualquier familia puede consumir menos sin renunciar a la comodidad.",
        ],
    ),
}

RU_TOPICS = {
    "borscht": (
        "Как я научился готовить борщ",
        [
            "В детстве я часто смотрел, как бабушка готовит борщ, но сам долго не решался повторить её рецепт.",
            "Прошлой зимой я наконец попросил её объяснить всё по шагам и записал каждое слово в тетрадь.",
            "Сначала нужно сварить крепкий бульон из говядины, и на это уходит не меньше двух часов.",
            "Пока варится мясо, можно натереть свёклу и морковь, нарезать лук и нашинковать капусту.",
            "Бабушка всегда тушила свёклу отдельно с небольшим количеством уксуса, чтобы она сохранила яркий цвет.",
            "Потом в бульон добавляют картофель, капусту и овощи, а в самом конце немного чеснока и зелени.",
            "Мой первый борщ получился слишком кислым, и вся семья долго вспоминала об этом со смехом.",
            "Со временем я понял, что главное в этом блюде не точные пропорции, а терпение и хорошие продукты.",
            "Настоящий борщ становится ещё вкуснее на следующий день, когда он как следует настоится.",
            "Теперь я готовлю его каждое воскресенье, и друзья часто просят меня поделиться рецептом.",
        ],
    ),
    "old_town": (
        "Прогулка по старому городу",
        [
            "В субботу мы с друзьями отправились на прогулку по старой части города, где почти не бывает машин.",
            "Узкие улицы там вымощены камнем, а дома украшены резными наличниками и яркими ставнями.",
            "Мы начали с небольшой площади у собора, где по выходным играют уличные музыканты.",
            "Затем мы зашли в старую пекарню, которая работает на одном месте уже больше ста лет.",
            "Хозяйка рассказала нам, что рецепт их ржаного хлеба передаётся в семье из поколения в поколение.",
            "После обеда мы поднялись на холм, откуда открывается прекрасный вид на реку и крыши домов.",
            "Там мы долго сидели на скамейке, разговаривали и смотрели, как по воде медленно проплывают лодки.",
            "Вечером в окнах зажглись огни, и город стал похож на иллюстрацию из старой детской книги.",
            "Такие прогулки помогают заново открыть место, в котором живёшь много лет и которое кажется давно знакомым.",
            "Мы решили, что будем устраивать их каждый месяц и каждый раз выбирать новый маршрут.",
        ],
    ),
}

ZH_TOPICS = {
    "park": (
        "周末去公园散步",
        [
            "上个周末天气特别好，我和家人一起去城东的公园散步。",
            "公园里有一个很大的湖，湖边种满了柳树，春天的时候特别漂亮。",
            "早上有很多老人在湖边打太极拳，还有一些人在树下唱歌、下棋。",
            "孩子们最喜欢的是喂鱼，他们拿着面包屑站在桥上，看着鱼群游过来抢食。",
            "中午我们在草地上铺了一块布，吃了自己带来的饭团、水果和点心。",
            "吃完饭以后，我们租了一条小船，在湖上慢慢地划了一个小时。",
            "下午公园里的人越来越多，有人放风筝，有人骑自行车，也有人坐在长椅上看书。",
            "我觉得城市里有这样一个安静的地方，对大家的身心健康都很有好处。",
            "回家的路上，孩子们一直在说下次还要再来，还想带上他们的好朋友。",
            "平时工作很忙，但是这样简单的一天让我感到非常放松和满足。",
            "如果你也住在附近，我很推荐你在天气好的时候去那里走一走。",
        ],
    ),
    "cooking": (
        "学习做饭的经验",
        [
            "大学毕业以后，我一个人搬到了新的城市工作，第一次需要自己做饭。",
            "刚开始的时候，我连最简单的西红柿炒鸡蛋都做不好，不是太咸就是太淡。",
            "后来我每个周末都给妈妈打电话，请她一步一步地教我做家常菜。",
            "她告诉我，做饭最重要的是新鲜的食材和合适的火候，而不是复杂的调料。",
            "我慢慢学会了炒青菜、煮米饭、做汤，还学会了包饺子。",
            "每次做出一道新菜，我都会拍照发给家人，他们也会给我提一些建议。",
            "自己做饭不仅比在外面吃更便宜，而且吃得更健康，也更放心。",
            "现在朋友们来我家的时候，我已经可以做一桌子菜招待他们了。",
            "我发现做饭也是一种放松的方式，忙了一天以后在厨房里切菜会让人心情平静。",
            "如果你也刚开始学习做饭，不要怕失败，多练习几次就会越来越好。",
        ],
    ),
}

JA_TOPICS = {
    "shitamachi": (
        "東京の下町を歩く",
        [
            "東京の下町には、昔ながらの商店街が今も数多く残っています。",
            "朝早くから魚屋や八百屋が店を開け、近所の人々が買い物かごを手に集まってきます。",
            "細い路地を歩いていると、鉢植えの花や古い木の看板があちこちに見つかります。",
            "小さな神社の前では、お年寄りがベンチに座って楽しそうに話をしていました。",
            "昼ごはんには、創業七十年になるという食堂でさばの味噌煮の定食を食べました。",
            "お店の主人は、この町が戦後どのように変わってきたのかを丁寧に話してくれました。",
            "最近では若い人たちが古い建物を改装して、おしゃれな喫茶店や雑貨屋を始めることも増えました。",
            "午後は川沿いの遊歩道を歩き、屋形船がゆっくりと進んでいくのを眺めました。",
            "夕方になると、銭湯の煙突から白い湯気が上がり、町全体が穏やかな雰囲気に包まれます。",
            "観光地として有名な場所だけでなく、こうした普段の暮らしが見える町を歩くのはとても楽しいものです。",
            "次の休みには、また別の下町を訪ねてみたいと思っています。",
        ],
    ),
    "breakfast": (
        "朝ごはんの大切さ",
        [
            "忙しい朝は、つい朝ごはんを抜いてしまう人も多いのではないでしょうか。",
            "しかし、朝ごはんをきちんと食べることは、一日を元気に過ごすためにとても大切です。",
            "寝ている間に使ったエネルギーを補うことで、頭と体がしっかりと目を覚まします。",
            "私は以前、朝は何も食べずに出かけていましたが、昼前になるといつも集中力が切れていました。",
            "そこで、前の晩にご飯を炊いておき、朝は味噌汁と卵焼きだけを作るようにしました。",
            "最初は面倒に感じましたが、慣れてしまえば十五分ほどで準備ができます。",
            "朝ごはんを食べるようになってから、午前中の仕事がずっとはかどるようになりました。",
            "時間がない日は、バナナやヨーグルトなど、すぐに食べられるものを用意しておくと便利です。",
            "家族と一緒に朝ごはんを食べる時間は、その日の予定を話し合うよい機会にもなります。",
            "小さな習慣ですが、毎日続けることで体調や気分が大きく変わることを実感しています。",
        ],
    ),
}

TOPICS = {"en": EN_TOPICS, "de": DE_TOPICS, "fr": FR_TOPICS, "es": ES_TOPICS, "ru": RU_TOPICS,
          "zh": ZH_TOPICS, "ja": JA_TOPICS}  # fmt: skip

# Replacement sentences for the near-duplicate pages: (topic, sentence index, new sentence).
NEAR_DUP_EDITS = {
    "sourdough": [
        (
            3,
            "My first loaf came out flat and heavy, yet it was still tastier than the bread from the supermarket down the road.",
        ),
        (
            10,
            "I remove the lid after twenty minutes and bake the loaf for about half an hour more, until the base sounds hollow.",
        ),
    ],
    "cycling": [
        (
            6,
            "The ride takes me just under half an hour, which is about as long as the drive used to take in the morning traffic.",
        ),
    ],
    "naturgarten": [
        (
            4,
            "Bereits im ersten Sommer besuchten uns deutlich mehr Bienen, Hummeln und Schmetterlinge als in den Jahren davor.",
        ),
    ],
}

# --------------------------------------------------------------------------------------------------
# Site boilerplate, per language: what trafilatura should strip (nav, sidebar, footer, cookie banner).
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    host: str
    name: str
    nav: tuple[str, ...]
    sidebar_title: str
    sidebar_links: tuple[str, ...]
    footer: str
    cookie: str
    byline: str


SITES = {
    "en": [
        Site("www.kitchentable-journal.example", "The Kitchen Table Journal",
             ("Home", "Recipes", "Garden", "Money", "Travel", "About us", "Contact"),
             "Popular posts", ("Ten easy weeknight dinners", "How to store fresh herbs", "Our favourite cookbooks",
                               "A guide to seasonal vegetables", "Reader questions answered"),
             "© 2024 The Kitchen Table Journal. All rights reserved.",
             "We use cookies to improve your experience on our website. By continuing to browse, you agree to our use of cookies.",
             "By {author} · Published {date}"),
        Site("northfield-gazette.example", "Northfield Gazette",
             ("News", "Sport", "Community", "Business", "Opinion", "Events", "Subscribe"),
             "Most read", ("Council approves new cycle lanes", "School wins regional science prize",
                           "Road closures this weekend", "Letters to the editor", "Weather warning for Tuesday"),
             "Copyright 2024 Northfield Gazette Ltd. Registered in England.",
             "This site uses cookies. Read our privacy policy to find out more and to change your settings.",
             "Posted by {author} on {date}"),
        Site("everyday-notes.example", "Everyday Notes",
             ("Blog", "Archive", "Tags", "Newsletter", "Search"),
             "Recent entries", ("Notes from a rainy week", "What I read in February", "A list of small joys",
                                "Lessons from a failed project", "Tidying the spare room"),
             "Everyday Notes is a personal blog. © 2019–2024. Powered by a static site generator.",
             "Cookies help us deliver our services. Accept all | Manage preferences",
             "{date} — {author}"),
    ],
    "de": [
        Site("www.alltag-und-garten.example", "Alltag & Garten",
             ("Startseite", "Garten", "Reisen", "Wohnen", "Über uns", "Kontakt"),
             "Beliebte Artikel", ("Zehn Tipps für den Herbstgarten", "Kräuter richtig trocknen", "Wandern mit Kindern",
                                  "Die besten Bücher des Jahres"),
             "© 2024 Alltag & Garten. Alle Rechte vorbehalten. Impressum | Datenschutz",
             "Diese Website verwendet Cookies. Wenn Sie weiter surfen, stimmen Sie der Verwendung von Cookies zu.",
             "Von {author} · {date}"),
        Site("nachbarschaft-blog.example", "Nachbarschaftsblog",
             ("Aktuelles", "Termine", "Vereine", "Archiv", "Impressum"),
             "Neueste Beiträge", ("Sommerfest im Park", "Neue Öffnungszeiten der Bibliothek", "Flohmarkt am Samstag"),
             "Nachbarschaftsblog 2024 · Datenschutzerklärung · Kontakt",
             "Wir nutzen Cookies, um unsere Seite für Sie zu verbessern. Alle akzeptieren | Einstellungen",
             "{date} von {author}"),
    ],
    "fr": [
        Site("www.carnet-du-quotidien.example", "Le Carnet du Quotidien",
             ("Accueil", "Cuisine", "Famille", "Sorties", "À propos", "Contact"),
             "Articles populaires", ("Cinq idées de pique-nique", "Bien choisir ses fruits", "Sorties en famille ce mois-ci"),
             "© 2024 Le Carnet du Quotidien. Tous droits réservés. Mentions légales",
             "Ce site utilise des cookies pour améliorer votre expérience. En poursuivant votre navigation, vous acceptez leur utilisation.",
             "Par {author} · {date}"),
    ],
    "es": [
        Site("www.vida-cotidiana.example", "Vida Cotidiana",
             ("Inicio", "Cocina", "Hogar", "Viajes", "Quiénes somos", "Contacto"),
             "Lo más leído", ("Diez recetas de verano", "Cómo organizar la despensa", "Escapadas de fin de semana"),
             "© 2024 Vida Cotidiana. Todos los derechos reservados. Aviso legal | Política de privacidad",
             "Utilizamos cookies propias y de terceros para mejorar nuestros servicios. Aceptar | Configurar",
             "Por {author} · {date}"),
    ],
    "ru": [
        Site("dom-i-zhizn.example", "Дом и жизнь",
             ("Главная", "Кухня", "Путешествия", "Семья", "О нас", "Контакты"),
             "Популярное", ("Десять рецептов на каждый день", "Как выбрать чайник", "Куда поехать летом"),
             "© 2024 Дом и жизнь. Все права защищены.",
             "Мы используем файлы cookie. Продолжая пользоваться сайтом, вы соглашаетесь с этим.",
             "Автор: {author} · {date}"),
    ],
    "zh": [
        Site("www.shenghuo-riji.example", "生活日记",
             ("首页", "美食", "旅行", "家庭", "关于我们", "联系我们"),
             "热门文章", ("十道简单的家常菜", "春天去哪里玩", "如何整理小房间"),
             "© 2024 生活日记 版权所有",
             "本网站使用Cookie来改善您的浏览体验。继续浏览即表示您同意我们使用Cookie。",
             "作者：{author} · {date}"),
    ],
    "ja": [
        Site("www.kurashi-note.example", "暮らしのノート",
             ("ホーム", "料理", "おでかけ", "暮らし", "運営者情報", "お問い合わせ"),
             "人気の記事", ("簡単な作り置きおかず", "週末のおでかけ先", "部屋を片付けるコツ"),
             "Copyright 2024 暮らしのノート All Rights Reserved.",
             "当サイトではクッキーを使用しています。引き続き閲覧することで、クッキーの使用に同意したものとみなされます。",
             "{date} 投稿者：{author}"),
    ],
}  # fmt: skip

AUTHORS = {"en": ["Emma Clarke", "James Holloway", "Priya Raman", "Tom Fletcher"], "de": ["Anna Weber", "Jonas Richter"],
           "fr": ["Claire Martin", "Luc Bernard"], "es": ["Lucía Romero", "Pablo Navarro"], "ru": ["Ольга Смирнова"],
           "zh": ["王丽"], "ja": ["佐藤美咲"]}  # fmt: skip

# --------------------------------------------------------------------------------------------------
# Pages and captures
# --------------------------------------------------------------------------------------------------


@dataclass
class Capture:
    """One fetched URL: request + response + metadata records; `expect` is the ingest outcome."""

    url: str
    body: bytes
    content_type: str | None = "text/html; charset=UTF-8"
    expect: str = "kept"  # "kept" or the drop reason the ingest stage must give
    lang: str | None = None
    raw_http: bytes | None = None  # a literal HTTP head, used for the unparsable one
    notes: list[str] = field(default_factory=list)


def paragraphs(sentences: list[str], rng: random.Random) -> list[str]:
    """Split sentences, in order, into 3-6 paragraphs."""
    n = min(len(sentences), rng.randint(3, 6))
    cuts = sorted(rng.sample(range(1, len(sentences)), n - 1))
    bounds = [0, *cuts, len(sentences)]
    sep = "" if sentences and _is_cjk(sentences[0]) else " "
    return [sep.join(sentences[a:b]) for a, b in itertools.pairwise(bounds)]


def _is_cjk(text: str) -> bool:
    return any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)


def _slug(label: str) -> str:
    return "/" + "-".join(label.lower().split())[:40]


def render_page(
    lang: str, site: Site, title: str, paras: list[str], author: str, date: str, charset: str
) -> str:
    """A full HTML page: header + nav, the article, a sidebar of links and a footer with a cookie notice."""
    nav = "\n".join(f'        <li><a href="{_slug(item)}">{item}</a></li>' for item in site.nav)
    side = "\n".join(f'        <li><a href="{_slug(item)}">{item}</a></li>' for item in site.sidebar_links)
    body = "\n".join(f"      <p>{p}</p>" for p in paras)
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
  <meta charset="{charset}">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} | {site.name}</title>
  <link rel="stylesheet" href="/static/css/site.css">
  <script src="/static/js/analytics.js" async></script>
</head>
<body>
  <header class="site-header">
    <a class="logo" href="/">{site.name}</a>
    <nav class="main-nav">
      <ul>
{nav}
      </ul>
    </nav>
  </header>
  <div class="container">
    <main>
    <article class="post">
      <h1>{title}</h1>
      <p class="byline">{site.byline.format(author=author, date=date)}</p>
{body}
    </article>
    </main>
    <aside class="sidebar">
      <h3>{site.sidebar_title}</h3>
      <ul>
{side}
      </ul>
    </aside>
  </div>
  <footer class="site-footer">
    <ul class="footer-links">
{nav}
    </ul>
    <p class="copyright">{site.footer}</p>
    <div class="cookie-banner"><p>{site.cookie}</p><button>OK</button></div>
  </footer>
</body>
</html>
"""


class PageMaker:
    """Turns topics into HTML captures; all randomness comes from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.day = 0

    def page(self, lang: str, key: str, title: str, sentences: list[str], site_index: int = 0,
             url_suffix: str = "", charset: str = "utf-8") -> tuple[str, str]:  # fmt: skip
        """(url, html) for one article."""
        site = SITES[lang][site_index % len(SITES[lang])]
        self.day += 1
        date = (START_DATE - timedelta(days=3 * self.day)).strftime("%Y-%m-%d")
        author = AUTHORS[lang][self.day % len(AUTHORS[lang])]
        html = render_page(lang, site, title, paragraphs(sentences, self.rng), author, date, charset)
        return f"https://{site.host}/{date[:4]}/{date[5:7]}/{key.replace('_', '-')}{url_suffix}", html

    def mixed(self, lang: str) -> tuple[str, list[str]]:
        """(title, sentences) drawn across all of a language's topics: new text, unlike any one page."""
        pool = [s for _, sentences in TOPICS[lang].values() for s in sentences]
        title = self.rng.choice([t for t, _ in TOPICS[lang].values()])
        # At most half the pool, so two such pages share few sentences (and are not near-duplicates)
        # even for the languages with small pools.
        most = min(20, len(pool) // 2)
        return title, self.rng.sample(pool, self.rng.randint(min(10, most), most))


def good_captures(maker: PageMaker, scale: int) -> list[Capture]:
    """Every language's topic pages, plus near-duplicates, an exact duplicate and `--scale` extras."""
    captures: list[Capture] = []
    for lang, topics in TOPICS.items():
        for i, (key, (title, sentences)) in enumerate(topics.items()):
            if lang == "fr" and key == "musee":
                continue  # written below in windows-1252
            if lang == "ja" and key == "shitamachi":
                continue  # written below in Shift_JIS
            url, html = maker.page(lang, key, title, sentences, site_index=i)
            notes = ["pii"] if key in ("book_club", "community_centre", "naturgarten", "laptop") else []
            captures.append(Capture(url, html.encode("utf-8"), lang=lang, notes=notes))
            for j, (index, replacement) in enumerate(NEAR_DUP_EDITS.get(key, [])):
                edited = list(sentences)
                edited[index] = replacement
                dup_url, dup_html = maker.page(
                    lang, key, title, edited, site_index=i + j + 1, url_suffix=f"-{j + 2}"
                )
                captures.append(
                    Capture(dup_url, dup_html.encode("utf-8"), lang=lang, notes=[f"near_dup:{key}"])
                )
            if key == "budget":  # the exact duplicate: the same bytes under a tracking-parameter URL
                captures.append(Capture(url + "?utm_source=newsletter&utm_medium=email", html.encode("utf-8"),
                                        lang=lang, notes=["exact_dup:budget"]))  # fmt: skip

    # Declared utf-8 everywhere (HTTP header and <meta>) but written in windows-1252: kept via detection.
    title, sentences = FR_TOPICS["musee"]
    url, html = maker.page("fr", "musee", title, sentences, site_index=0)
    captures.append(Capture(url, html.encode("cp1252"), lang="fr", notes=["cp1252_declared_utf8"]))
    # Shift_JIS declared only in <meta>: the HTTP header has no charset.
    title, sentences = JA_TOPICS["shitamachi"]
    url, html = maker.page("ja", "shitamachi", title, sentences, charset="Shift_JIS")
    captures.append(
        Capture(url, html.encode("shift_jis"), content_type="text/html", lang="ja", notes=["shift_jis_meta"])
    )

    base = list(captures)
    for n in range(len(base) * (scale - 1)):
        lang = base[n % len(base)].lang or "en"
        title, picked = maker.mixed(lang)
        url, html = maker.page(lang, f"notes-{n:06d}", title, picked, site_index=n)
        captures.append(Capture(url, html.encode("utf-8"), lang=lang, notes=["scale"]))
    return captures


def low_quality_captures(maker: PageMaker) -> list[Capture]:
    """Pages that ingest keeps but quality filters should drop."""
    site = SITES["en"][2]
    links = ["Cheap flights Paris", "Hotels Rome", "Car hire Madrid", "Best deals", "Top 10 gadgets", "Login",
             "Free ringtones", "Casino bonus", "Weight loss", "Credit check", "Dating", "Horoscope today"]  # fmt: skip
    link_lines = [f'<a href="/go/{i}">{links[i % len(links)]} {i}</a><br>' for i in range(60)]
    spam = ["Best prices on replica watches, click here now!"] * 60
    pages = [
        ("link-directory", "Useful links", ["\n".join(link_lines)]),
        ("replica-watches", "Replica watches", ["<br>\n".join(spam)]),
        ("coming-soon", "Coming soon", ["Page under construction."]),
    ]
    out = []
    for key, title, paras in pages:
        html = render_page("en", site, title, paras, "admin", "2024-01-01", "utf-8")
        out.append(
            Capture(f"https://{site.host}/{key}", html.encode("utf-8"), lang="en", notes=["low_quality"])
        )
    return out


def malformed_captures(seed: int) -> list[Capture]:
    """One record of each malformed kind; each lands in its named drop reason."""
    rng = random.Random(seed + 1)
    page = "<html><body>" + "<p>This is filler text that repeats to make a very large page.</p>\n" * 32000
    big = page.encode("utf-8")[: MAX_BODY_BYTES + 100_000] + b"</body></html>"
    return [
        Capture("http://badserver.example/status", b"", expect="http_unparsable",
                raw_http=b"GARBAGE\x00\x13 NOT-HTTP ???\r\nContent-Type: text/html\r\n\r\n<html><p>Hello</p></html>"),
        Capture("https://files.example.org/report-2023.pdf",
                b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
                content_type="application/pdf", expect="not_html"),
        Capture("https://images.example.net/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(rng.getrandbits(8) for _ in range(200)),
                content_type="image/png", expect="not_html"),
        Capture("https://www.emptypage.example/", b"", expect="empty"),
        Capture("https://binary.example.com/download", bytes(rng.getrandbits(8) for _ in range(4096)),
                content_type="text/html; charset=utf-8", expect="decode_error"),
        Capture("https://www.huge-listing.example/all-products", big, expect="too_large"),
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Writing WARC records
# --------------------------------------------------------------------------------------------------


def gzip_member(data: bytes) -> bytes:
    """One gzip member with a fixed header (mtime 0, OS 255) so output does not depend on time or OS."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = compressor.compress(data) + compressor.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + deflated + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


class WarcFile:
    """Builds one WARC file as a list of gzip members (one per record), like Common Crawl's."""

    def __init__(self, name: str, ids: IdSource, description: str) -> None:
        self.name, self.ids = name, ids
        self.members: list[bytes] = []
        self.expected: Counter[str] = Counter()
        self.notable: list[str] = []  # "what: url" for every record that is not a plain good page
        self.warcinfo_id = ids.record_id()
        info = (f"software: curate make_sample_warc.py\r\nformat: WARC File Format 1.0\r\n"
                f"conformsTo: http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.0/\r\n"
                f"isPartOf: CC-SAMPLE-2024-10\r\noperator: curate sample generator\r\n"
                f"description: {description}\r\nrobots: checked via crawler-commons\r\n").encode()  # fmt: skip
        self.write("", "warcinfo", info, {"WARC-Record-ID": self.warcinfo_id, "WARC-Date": ids.date(),
                                          "WARC-Filename": name, "Content-Type": "application/warc-fields"})  # fmt: skip
        self.expected["not_response"] += 1

    def write(self, uri: str, rec_type: str, payload: bytes, headers: dict[str, str],
              http_headers: StatusAndHeaders | None = None) -> None:  # fmt: skip
        buf = io.BytesIO()
        writer = WARCWriter(buf, gzip=False)
        # 'resource' stops warcio from parsing (and rejecting) an HTTP head in the payload; the type is
        # set back right after, for the deliberately unparsable response.
        build_type = "resource" if rec_type == "response" and http_headers is None else rec_type
        content_type = headers.pop("Content-Type", None) or writer.WARC_RECORDS.get(rec_type, "")
        record = writer.create_warc_record(uri, build_type, payload=io.BytesIO(payload), length=len(payload),
                                           warc_content_type=content_type, warc_headers_dict=headers,
                                           http_headers=http_headers)  # fmt: skip
        if build_type != rec_type:
            record.rec_type = rec_type
            record.rec_headers.replace_header("WARC-Type", rec_type)
        writer.write_record(record)
        self.members.append(gzip_member(buf.getvalue()))

    def capture(self, cap: Capture) -> None:
        """request + response + metadata for one URL, as Common Crawl writes them."""
        date = self.ids.date()
        response_id, request_id, metadata_id = (
            self.ids.record_id(),
            self.ids.record_id(),
            self.ids.record_id(),
        )
        host = cap.url.split("/")[2]
        path = "/" + cap.url.split("/", 3)[3] if cap.url.count("/") >= 3 else "/"
        common = {"WARC-Date": date, "WARC-Warcinfo-ID": self.warcinfo_id}
        request = StatusAndHeaders(f"GET {path} HTTP/1.1", [
            ("Host", host), ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ("Accept-Language", "en-US,en;q=0.5"), ("User-Agent", "CCBot/2.0 (https://commoncrawl.org/faq/)"),
            ("Accept-Encoding", "br,gzip"), ("Connection", "Keep-Alive")], is_http_request=True)  # fmt: skip
        self.write(cap.url, "request", b"", {**common, "WARC-Record-ID": request_id, "WARC-IP-Address": "192.0.2.80"},
                   http_headers=request)  # fmt: skip
        response_headers = {**common, "WARC-Record-ID": response_id, "WARC-IP-Address": "192.0.2.80",
                            "WARC-Concurrent-To": request_id}  # fmt: skip
        if cap.raw_http is not None:
            self.write(cap.url, "response", cap.raw_http,
                       {**response_headers, "Content-Type": "application/http; msgtype=response"})  # fmt: skip
        else:
            head = [("Date", "Mon, 04 Mar 2024 10:00:00 GMT"), ("Server", "nginx")]
            if cap.content_type:
                head.append(("Content-Type", cap.content_type))
            head += [("X-Crawler-Content-Length", str(len(cap.body))), ("Content-Length", str(len(cap.body))),
                     ("Connection", "close")]  # fmt: skip
            if cap.content_type:
                response_headers["WARC-Identified-Payload-Type"] = cap.content_type.split(";")[0]
            http = StatusAndHeaders("200 OK", head, protocol="HTTP/1.1")
            self.write(cap.url, "response", cap.body, response_headers, http_headers=http)
        self.expected[cap.expect] += 1
        self.notable += [f"{what}: {cap.url}" for what in ([] if cap.expect == "kept" else [cap.expect]) + cap.notes
                         if what != "scale"]  # fmt: skip
        fetch_ms = 100 + int(hashlib.sha256(cap.url.encode()).hexdigest()[:4], 16) % 900
        meta = f"fetchTimeMs: {fetch_ms}\r\ncharset-detected: UTF-8\r\n".encode()
        self.write(cap.url, "metadata", meta, {**common, "WARC-Record-ID": metadata_id, "WARC-Concurrent-To": response_id,
                                               "Content-Type": "application/warc-fields"})  # fmt: skip
        self.expected["not_response"] += 2

    def save(self, out_dir: Path, truncate_last: bool = False) -> None:
        members = list(self.members)
        if truncate_last:
            # Cut the last member in half: a download that stopped mid-record.
            members[-1] = members[-1][: len(members[-1]) // 2]
            self.expected["kept"] -= 1
            self.expected["warc_corrupt"] += 1
        (out_dir / self.name).write_bytes(b"".join(members))


class IdSource:
    """Deterministic WARC-Record-IDs and WARC-Dates: derived from the seed and a counter."""

    def __init__(self, seed: int) -> None:
        self.seed, self.counter, self.seconds = seed, 0, 0

    def record_id(self) -> str:
        self.counter += 1
        digest = hashlib.sha256(f"curate-sample:{self.seed}:{self.counter}".encode()).digest()
        return f"<urn:uuid:{uuid.UUID(bytes=digest[:16], version=4)}>"

    def date(self) -> str:
        self.seconds += 7
        return (START_DATE + timedelta(seconds=self.seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_wet(out_dir: Path, maker: PageMaker, ids: IdSource) -> WarcFile:
    """A small WET file: warcinfo + plain-text conversion records in English and German."""
    wet = WarcFile("crawl-wet.warc.wet.gz", ids, "Extracted plain text (WET) for the sample crawl")
    # Sentences sampled across topics, so these texts are not duplicates of the WARC pages.
    for n, lang in enumerate(["en", "en", "de", "de"]):
        title, sentences = maker.mixed(lang)
        half = len(sentences) // 2
        text = f"{title}\n{' '.join(sentences[:half])}\n{' '.join(sentences[half:])}\n"
        uri = f"https://text-archive.example/{lang}/article-{n + 1}"
        wet.write(uri, "conversion", text.encode("utf-8"), {
            "WARC-Record-ID": ids.record_id(), "WARC-Date": ids.date(), "WARC-Refers-To": ids.record_id(),
            "WARC-Identified-Content-Language": {"en": "eng", "de": "deu"}[lang], "Content-Type": "text/plain"})  # fmt: skip
        wet.expected["kept"] += 1
    wet.save(out_dir)
    return wet


def write_truncated(out_dir: Path, maker: PageMaker, ids: IdSource) -> WarcFile:
    """Three good captures, then a response whose gzip member is cut in half."""
    broken = WarcFile("broken-truncated.warc.gz", ids, "A download that stopped part-way through")
    # Sentences sampled across topics, so these pages are not duplicates of the crawl's pages.
    pages = [maker.page("en", f"mirror-{n}", *maker.mixed("en"), site_index=1) for n in range(4)]
    for url, html in pages[:3]:
        broken.capture(Capture(url, html.encode("utf-8"), lang="en"))
    # The file's last record must be a response so that the cut falls inside a page: no metadata after it.
    url, html = pages[3]
    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=UTF-8")], protocol="HTTP/1.1")
    broken.write(url, "response", html.encode("utf-8"), {"WARC-Record-ID": ids.record_id(), "WARC-Date": ids.date()},
                 http_headers=http)  # fmt: skip
    broken.expected["kept"] += 1
    broken.notable.append(f"warc_corrupt (gzip member cut in half): {url}")
    broken.save(out_dir, truncate_last=True)
    return broken


def build(out_dir: Path, seed: int = 2024, scale: int = 1) -> dict[str, Counter[str]]:
    """Write the sample into `out_dir`; return the expected ingest outcome per file (reason -> count)."""
    if scale < 1:
        raise ValueError(f"--scale must be at least 1, got {scale}")
    out_dir.mkdir(parents=True, exist_ok=True)
    maker, ids = PageMaker(seed), IdSource(seed)
    good = good_captures(maker, scale)
    low = low_quality_captures(maker)
    bad = malformed_captures(seed)
    # Good pages go round-robin over the files; low-quality and malformed ones are spread over the
    # files too (item k to file k mod 4), each at a fixed spot between good pages.
    per_file: list[list[Capture]] = [good[i::CRAWL_FILES] for i in range(CRAWL_FILES)]
    for k, cap in enumerate(low + bad):
        pages = per_file[k % CRAWL_FILES]
        pages.insert((k * 3 + 2) % (len(pages) + 1), cap)
    files = [WarcFile(f"crawl-{i:02d}.warc.gz", ids, f"Sample crawl, part {i + 1} of {CRAWL_FILES}")
             for i in range(CRAWL_FILES)]  # fmt: skip
    for f, pages in zip(files, per_file, strict=True):
        for cap in pages:
            f.capture(cap)
    for f in files:
        f.save(out_dir)
    files.append(write_truncated(out_dir, maker, ids))
    files.append(write_wet(out_dir, maker, ids))
    write_readme(out_dir, files, good + low, seed, scale)
    return {f.name: f.expected for f in files}


def write_readme(out_dir: Path, files: list[WarcFile], pages: list[Capture], seed: int, scale: int) -> None:
    """README.md for the sample: contents, how to rebuild, and the expected ingest outcome per file."""
    reasons = ["kept", "not_response", "http_unparsable", "not_html", "too_large", "empty", "decode_error",
               "warc_corrupt"]  # fmt: skip
    rows = ["| file | records | " + " | ".join(reasons) + " |", "|---" * (len(reasons) + 2) + "|"]
    for f in files:
        counts = f.expected
        cells = " | ".join(str(counts[r]) for r in reasons)
        rows.append(f"| `{f.name}` | {sum(counts.values())} | {cells} |")
    where = "\n".join(
        f"- `{f.name}`\n" + "".join(f"  - {line}\n" for line in f.notable) for f in files if f.notable
    )
    langs = Counter(p.lang for p in pages if "low_quality" not in p.notes)
    lang_line = ", ".join(f"{lang} {n}" for lang, n in sorted(langs.items(), key=lambda kv: -kv[1]))
    sizes = "\n".join(f"- `{p.name}`: {p.stat().st_size:,} bytes" for p in sorted(out_dir.glob("*.gz")))
    text = f"""# Sample crawl

A small, deterministic crawl for tests, examples and benchmarks, written by
`scripts/make_sample_warc.py` (seed {seed}, scale {scale}). Rebuild it with:

    python scripts/make_sample_warc.py              # into data/samples/
    python scripts/make_sample_warc.py --scale 50 --out /tmp/bench   # 50x the good pages

Reruns write byte-identical files (record ids and dates come from the seed, gzip headers carry no
timestamp).

## Contents

- `crawl-00.warc.gz` … `crawl-03.warc.gz`: Common Crawl-style WARCs, each a `warcinfo` record then
  `request` / `response` / `metadata` triples. Each good page is 3-6 paragraphs of real prose inside
  site boilerplate (header, `<nav>`, sidebar of links, footer with copyright and cookie notice) that
  an extractor should strip.
  - Good pages per language: {lang_line}.
  - Near-duplicates: the sourdough article 3 times (one sentence changed in each copy, different
    site templates), the cycling article twice, the German garden article twice.
  - Exact duplicate: the budgeting article again, byte for byte, under a `?utm_source=...` URL.
  - PII in running text: e-mail addresses and phone numbers in US, UK, French, Australian and German
    formats (book club, community centre and German garden pages), IPv4 addresses (used-laptop page).
    All use reserved example domains, fictional-use number ranges and documentation IP ranges.
  - Low quality, for the filters (kept by ingest): a page of short link lines, a page repeating one
    line 60 times, and a one-sentence page.
  - Charsets: a French page in windows-1252 declared utf-8 in both HTTP and `<meta>` (kept through
    detection), a Japanese page in Shift_JIS declared only in `<meta>` (kept).
  - Malformed, one each: garbage HTTP status line, a PDF and a PNG, an empty body, 4 KB of random
    bytes declared `text/html; charset=utf-8`, and a ~2.1 MB page (a few KB compressed).
- `broken-truncated.warc.gz`: three good captures, then a response whose gzip member is cut in half.
- `crawl-wet.warc.wet.gz`: a WET file, `warcinfo` + 4 `conversion` (text/plain) records, English and
  German.

## Expected `warc_ingest` outcome (default config)

Every record is one row: `records = kept + dropped`.

{chr(10).join(rows)}

## Where the special records are

{where}
## Sizes

{sizes}
"""
    (out_dir / "README.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> dict[str, Counter[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/samples"), help="output directory")
    parser.add_argument("--seed", type=int, default=2024, help="seed for page layout, ids and random bodies")
    parser.add_argument("--scale", type=int, default=1, help="multiply the number of good pages (benchmarks)")
    args = parser.parse_args(argv)
    expected = build(args.out, seed=args.seed, scale=args.scale)
    for name, counts in expected.items():
        print(f"{args.out / name}: {sum(counts.values())} records, {dict(sorted(counts.items()))}")
    return expected


if __name__ == "__main__":
    main()
