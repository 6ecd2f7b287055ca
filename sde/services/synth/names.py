"""Names by origin, for the synthetic population.

Each origin carries given names by sex, family names (with the female form where a language
inflects it: ``Kowalski/Kowalska``, ``Kazlauskas/Kazlauskienė``), a loose distribution of
NHS ethnic category codes, a share of the population and the towns where it is more common
than average. The shares are rough figures for England and Wales; they only need to make a
realistic mix, not a census.

Everything here is invented data assembled from common names; no row of it is a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Origin:
    key: str
    weight: float
    male: tuple[str, ...]
    female: tuple[str, ...]
    surnames: tuple[tuple[str, str], ...]
    ethnicity: tuple[tuple[str, float], ...]
    towns: dict[str, float] = field(default_factory=dict)
    # Given names that date: used for people born before 1965 / from 1995 on.
    male_older: tuple[str, ...] = ()
    female_older: tuple[str, ...] = ()
    male_younger: tuple[str, ...] = ()
    female_younger: tuple[str, ...] = ()


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _surnames(text: str) -> tuple[tuple[str, str], ...]:
    """``"Nowak, Kowalski/Kowalska"`` -> ``(("Nowak", "Nowak"), ("Kowalski", "Kowalska"))``."""
    out: list[tuple[str, str]] = []
    for item in _names(text):
        male, _, female = item.partition("/")
        out.append((male, female or male))
    return tuple(out)


ORIGINS: tuple[Origin, ...] = (
    Origin(
        key="english",
        weight=52.0,
        male_older=_names(
            "John, David, Michael, Peter, Robert, William, James, Brian, Kenneth, Alan, Barry, "
            "Colin, Derek, Geoffrey, Graham, Keith, Malcolm, Raymond, Roger, Trevor, Terence, "
            "Anthony, George, Harold, Frank, Arthur, Ronald, Dennis, Leslie, Norman"
        ),
        female_older=_names(
            "Margaret, Patricia, Susan, Christine, Jean, Sandra, Linda, Janet, Carol, "
            "Elizabeth, Mary, Barbara, Pauline, Maureen, Valerie, Doreen, Joan, Brenda, Sheila, "
            "Irene, Gillian, Ann, Dorothy, Hazel, Jacqueline, Beryl, Marjorie, Sylvia"
        ),
        male=_names(
            "Paul, Mark, Andrew, Stephen, Darren, Lee, Craig, Gary, Wayne, Jason, Matthew, "
            "Christopher, Daniel, Simon, Neil, Richard, Jonathan, Stuart, Martin, Ian, Adam, "
            "Carl, Dean, Scott, Ryan, Nicholas, Timothy, Jamie, Philip, Kevin"
        ),
        female=_names(
            "Sarah, Claire, Emma, Nicola, Lisa, Karen, Joanne, Rachel, Helen, Louise, Michelle, "
            "Amanda, Kelly, Gemma, Donna, Victoria, Kerry, Samantha, Laura, Rebecca, Jennifer, "
            "Hayley, Natalie, Stacey, Julie, Katie, Zoe, Charlotte, Lucy, Joanna"
        ),
        male_younger=_names(
            "Oliver, Jack, Harry, George, Charlie, Thomas, Jacob, Alfie, Joshua, William, Noah, "
            "Leo, Oscar, Archie, Freddie, Henry, Theo, Arthur, Lewis, Callum, Kieran, Tyler, "
            "Ethan, Liam, Finley, Reuben, Toby, Max, Elliot, Harvey"
        ),
        female_younger=_names(
            "Olivia, Amelia, Isla, Ava, Emily, Poppy, Sophie, Jessica, Lily, Grace, Mia, Ella, "
            "Isabella, Evie, Chloe, Freya, Charlotte, Megan, Holly, Ruby, Florence, Daisy, "
            "Millie, Phoebe, Harriet, Matilda, Imogen, Esme, Willow, Niamh"
        ),
        surnames=_surnames(
            "Smith, Jones, Taylor, Brown, Wilson, Johnson, Wright, Walker, Robinson, Thompson, "
            "White, Hughes, Edwards, Green, Hall, Wood, Harris, Lewis, Martin, Jackson, Clarke, "
            "Turner, Hill, Scott, Cooper, Morris, Ward, Moore, King, Watson, Baker, Harrison, "
            "Young, Allen, Mitchell, James, Anderson, Phillips, Lee, Bell, Parker, Davis, Shaw, "
            "Marshall, Cook, Carter, Bennett, Gray, Holmes, Barnes, Fletcher, Ashworth, "
            "Sutcliffe, Ramsbottom, Higginbottom, Pickles, Butterworth, Hargreaves, Ackroyd, "
            "Pollard, Whitaker, Thornton, Brierley, Ashton-Hughes, Bennett-Clarke, Fox, "
            "Lamb, Knight, Stone, Kirk, Atkinson, Dawson, Booth, Lister, Holroyd"
        ),
        ethnicity=(
            ("A", 85.0),
            ("D", 1.0),
            ("E", 0.5),
            ("F", 1.0),
            ("G", 1.0),
            ("C", 1.5),
            ("Z", 10.0),
        ),
    ),
    Origin(
        key="scottish",
        weight=5.0,
        male=_names(
            "Alistair, Angus, Callum, Douglas, Duncan, Euan, Fraser, Gordon, Hamish, Iain, "
            "Lachlan, Murdo, Ross, Ruaridh, Stuart, Kenneth, Craig, Graeme, Finlay, Archie, "
            "Ewan, Alasdair, Struan, Gregor"
        ),
        female=_names(
            "Agnes, Ailsa, Catriona, Elspeth, Fiona, Eilidh, Iona, Isla, Kirsty, Mhairi, Morag, "
            "Moira, Shona, Seonaid, Rhona, Lorna, Heather, Kirsteen, Isobel, Jessie, Marion"
        ),
        surnames=_surnames(
            "MacDonald, Campbell, Stewart, Robertson, Murray, MacLeod, Ferguson, Fraser, "
            "Henderson, Mackenzie, Ross, Sinclair, Mackay, McGregor, Buchanan, Cameron, Grant, "
            "Munro, Paterson, Kerr, Urquhart, McIntyre, Drummond, Gillespie, Macaulay, "
            "McPherson, Galbraith, Lindsay, Crawford"
        ),
        ethnicity=(("A", 88.0), ("C", 2.0), ("Z", 10.0)),
        towns={"Newcastle upon Tyne": 2.0, "Carlisle": 3.0, "Sunderland": 1.5},
    ),
    Origin(
        key="welsh",
        weight=4.0,
        male=_names(
            "Dafydd, Gareth, Gethin, Gwyn, Huw, Iwan, Ieuan, Llewelyn, Owain, Rhodri, Rhys, "
            "Emyr, Aled, Bryn, Cai, Dylan, Geraint, Tomos, Elis, Osian, Hywel, Meirion"
        ),
        female=_names(
            "Angharad, Bethan, Carys, Catrin, Cerys, Eleri, Ffion, Gwen, Gwenllian, Lowri, "
            "Manon, Nia, Rhian, Siân, Seren, Elin, Mererid, Efa, Non, Heledd, Megan, Glenys"
        ),
        surnames=_surnames(
            "Jones, Williams, Davies, Evans, Thomas, Roberts, Lewis, Hughes, Morgan, Griffiths, "
            "Owen, Price, Pritchard, Jenkins, Rees, Powell, Llewellyn, Vaughan, Parry, Bowen, "
            "Prosser, Gwynne, Prys, ap Iorwerth, Howells, Lloyd"
        ),
        ethnicity=(("A", 88.0), ("C", 2.0), ("Z", 10.0)),
        towns={"Cardiff": 14.0, "Swansea": 18.0, "Newport": 14.0, "Shrewsbury": 3.0},
    ),
    Origin(
        key="irish",
        weight=4.0,
        male=_names(
            "Seán, Ciarán, Declan, Eoin, Cathal, Pádraig, Niall, Conor, Liam, Oisín, Darragh, "
            "Fergal, Colm, Diarmuid, Cormac, Aidan, Brendan, Kieran, Ronan, Tadhg, Séamus"
        ),
        female=_names(
            "Aoife, Siobhán, Niamh, Caoimhe, Róisín, Orla, Sinéad, Gráinne, Clodagh, Saoirse, "
            "Aisling, Bríd, Deirdre, Eimear, Fionnuala, Maeve, Nuala, Úna, Mairéad, Bernadette"
        ),
        surnames=_surnames(
            "Murphy, Kelly, O'Sullivan, Walsh, O'Brien, Byrne, Ryan, O'Connor, O'Neill, Doyle, "
            "McCarthy, Gallagher, Quinn, Kennedy, Lynch, Nolan, Ó Briain, Fitzgerald, Brennan, "
            "Daly, Flanagan, Keane, McLaughlin, Donnelly, Mac Giolla Phádraig, O'Donoghue"
        ),
        ethnicity=(("B", 78.0), ("A", 10.0), ("Z", 12.0)),
        towns={
            "London": 1.6,
            "Birmingham": 1.5,
            "Manchester": 1.5,
            "Liverpool": 2.0,
            "Luton": 1.5,
            "Coventry": 1.5,
        },
    ),
    Origin(
        key="indian",
        weight=3.6,
        male=_names(
            "Rajesh, Sanjay, Amit, Vikram, Arjun, Rohan, Sunil, Anil, Ravi, Pradeep, Deepak, "
            "Harpreet, Gurpreet, Jaswinder, Manjit, Kiran, Nikhil, Aarav, Vihaan, Dev, Suresh, "
            "Ramesh, Hitesh, Jayesh"
        ),
        female=_names(
            "Priya, Anjali, Sunita, Deepa, Kavita, Meera, Neha, Pooja, Shreya, Asha, Lakshmi, "
            "Rupinder, Harjit, Simran, Divya, Anika, Nisha, Rekha, Geeta, Jaspreet, Hansa, "
            "Bhavna"
        ),
        surnames=_surnames(
            "Patel, Sharma, Singh/Kaur, Gupta, Shah, Mistry, Mehta, Desai, Joshi, Kumar, "
            "Chauhan, Sandhu, Gill, Dhillon, Sidhu, Bains, Parmar, Solanki, Chopra, Nair, Menon, "
            "Reddy, Iyer, Pillai, D'Souza, Fernandes, Lad, Makwana, Thakrar"
        ),
        ethnicity=(("H", 86.0), ("F", 2.0), ("L", 2.0), ("Z", 10.0)),
        towns={
            "Leicester": 9.0,
            "London": 2.5,
            "Wembley": 8.0,
            "Harrow": 8.0,
            "Southall": 8.0,
            "Hounslow": 5.0,
            "Birmingham": 2.0,
            "Wolverhampton": 4.0,
            "Coventry": 3.0,
            "Slough": 4.0,
            "Derby": 2.0,
        },
    ),
    Origin(
        key="pakistani",
        weight=3.0,
        male=_names(
            "Muhammad, Mohammed, Ali, Imran, Asif, Tariq, Zubair, Bilal, Usman, Hamza, Faisal, "
            "Kashif, Naveed, Shahid, Zahid, Adnan, Amir, Ibrahim, Yasir, Waqas, Zain, Ayaan"
        ),
        female=_names(
            "Ayesha, Fatima, Zainab, Sana, Nadia, Rabia, Saima, Shazia, Samina, Amina, Bushra, "
            "Hina, Iqra, Maryam, Nasreen, Parveen, Rukhsana, Tahira, Uzma, Zara, Aleena, Hafsa"
        ),
        surnames=_surnames(
            "Khan, Hussain, Ahmed, Akhtar, Iqbal, Mahmood, Raza, Butt, Malik, Qureshi, "
            "Chaudhry, Shah, Aslam, Anwar, Rashid, Siddiqui, Javed, Nawaz, Rehman, Younis, "
            "Hussain/Bibi, Khan/Begum, Mirza, Arshad"
        ),
        ethnicity=(("J", 87.0), ("F", 2.0), ("L", 1.0), ("Z", 10.0)),
        towns={
            "Bradford": 12.0,
            "Birmingham": 4.0,
            "Manchester": 3.0,
            "Oldham": 6.0,
            "Blackburn": 8.0,
            "Luton": 5.0,
            "Slough": 5.0,
            "Huddersfield": 5.0,
            "Leeds": 1.5,
            "Bolton": 3.0,
            "Ilford": 4.0,
        },
    ),
    Origin(
        key="bangladeshi",
        weight=1.4,
        male=_names(
            "Abdul, Mohammed, Rahim, Karim, Jamal, Shahidul, Rafiq, Anwar, Habib, Faruk, "
            "Mizanur, Shafiq, Nurul, Kamrul, Sohel, Rubel, Shamim, Mahbub, Rashed, Ashraf, "
            "Ayaan, Rayyan"
        ),
        female=_names(
            "Nasima, Rahima, Shahana, Salma, Rokeya, Taslima, Shirin, Jesmin, Farzana, Sumaiya, "
            "Tania, Nazia, Rupa, Shathi, Lima, Fahmida, Sultana, Hasina, Amena, Halima, Jannat"
        ),
        surnames=_surnames(
            "Miah/Begum, Uddin/Begum, Rahman, Ali, Hoque, Islam, Chowdhury, Ahmed, Hossain, "
            "Ali/Khatun, Alam, Sarkar, Bhuiyan, Talukdar, Mia, Karim, Haque, Kabir, Sheikh, "
            "Miah, Uddin"
        ),
        ethnicity=(("K", 88.0), ("L", 2.0), ("Z", 10.0)),
        towns={
            "London": 6.0,
            "Birmingham": 2.5,
            "Oldham": 5.0,
            "Luton": 4.0,
            "Bradford": 1.5,
            "Ilford": 4.0,
        },
    ),
    Origin(
        key="sri_lankan",
        weight=0.5,
        male=_names(
            "Suresh, Ganesh, Kumaran, Rajan, Sivakumar, Tharshan, Nimal, Kasun, Ruwan, Dinesh, "
            "Mahesh, Thilina, Sanjeev, Arun, Gajan, Kajan"
        ),
        female=_names(
            "Nirosha, Dilani, Shanthi, Thanuja, Malathi, Kavitha, Priyanka, Sharmila, Chamari, "
            "Dilrukshi, Anusha, Vasuki, Tharsini, Yalini, Gayathri, Abirami"
        ),
        surnames=_surnames(
            "Sivarajah, Thevarajah, Kanagaratnam, Balasubramaniam, Perera, Fernando, de Silva, "
            "Jayasuriya, Wickramasinghe, Gunawardena, Senanayake, Navaratnam, Yogarajah, "
            "Selvarajah, Mahendran, Ratnam, Kumarasamy, Arulanantham"
        ),
        ethnicity=(("L", 85.0), ("H", 3.0), ("Z", 12.0)),
        towns={"London": 3.0, "Harrow": 6.0, "Wembley": 5.0, "Croydon": 5.0},
    ),
    Origin(
        key="chinese",
        weight=0.9,
        male=_names(
            "Wei, Jun, Hao, Ming, Jian, Lei, Tao, Kwok Wai, Chi Keung, Wing, Ka Ho, Zhiwei, "
            "Yong, Bo, Jie, Xiaoming, Kai, Hong"
        ),
        female=_names(
            "Mei, Li, Xiu Ying, Fang, Yan, Ling, Hui, Jing, Xin, Wai Man, Siu Ling, Yuen, Shu, "
            "Qing, Xiaoli, Lan, Ying, Pui Yee, Ka Yan, Min"
        ),
        surnames=_surnames(
            "Wang, Li, Zhang, Liu, Chen, Yang, Huang, Zhao, Wu, Zhou, Chan, Wong, Cheung, Lau, "
            "Leung, Ng, Ho, Tang, Lam, Yip, Kwok, Tsang, Lee, Choi"
        ),
        ethnicity=(("R", 86.0), ("L", 2.0), ("Z", 12.0)),
        towns={
            "London": 2.0,
            "Manchester": 2.5,
            "Cambridge": 3.0,
            "Liverpool": 2.0,
            "Sheffield": 1.5,
            "Nottingham": 1.5,
        },
    ),
    Origin(
        key="vietnamese",
        weight=0.3,
        male=_names("Minh, Tuan, Hung, Duc, Quang, Thanh, Long, Nam, Dung, Huy, Phuc, Khoa"),
        female=_names("Lan, Huong, Mai, Thu, Linh, Ngoc, Trang, Thao, Hoa, Phuong, Anh, Hanh"),
        surnames=_surnames(
            "Nguyen, Tran, Le, Pham, Hoang, Phan, Vu, Dang, Bui, Do, Ho, Ngo, Duong, Ly"
        ),
        ethnicity=(("L", 70.0), ("S", 15.0), ("Z", 15.0)),
        towns={"London": 3.0, "Birmingham": 1.5},
    ),
    Origin(
        key="filipino",
        weight=0.4,
        male=_names(
            "Jose, Juan, Mark Anthony, John Paul, Rommel, Jericho, Rodel, Ramon, Ferdinand, "
            "Edgardo, Arnel, Reynaldo"
        ),
        female=_names(
            "Maria Cristina, Rowena, Marites, Maricel, Lourdes, Rosalinda, Jennelyn, Analyn, "
            "Cherry, Joy, Rhea, Maria Luisa"
        ),
        surnames=_surnames(
            "Santos, Reyes, Cruz, Bautista, Ocampo, Garcia, Mendoza, Torres, Tomas, Aquino, "
            "Villanueva, Dela Cruz, De Leon, Ramos, Castillo, Manalo, Pascual"
        ),
        ethnicity=(("L", 80.0), ("S", 5.0), ("Z", 15.0)),
        towns={"London": 2.0, "Croydon": 3.0},
    ),
    Origin(
        key="polish",
        weight=2.0,
        male=_names(
            "Piotr, Krzysztof, Andrzej, Tomasz, Paweł, Michał, Marcin, Łukasz, Grzegorz, Jakub, "
            "Kamil, Mateusz, Wojciech, Rafał, Marek, Dariusz, Jan, Szymon, Bartosz, Przemysław"
        ),
        female=_names(
            "Anna, Katarzyna, Małgorzata, Agnieszka, Magdalena, Joanna, Ewa, Monika, "
            "Aleksandra, Justyna, Dorota, Beata, Karolina, Natalia, Zofia, Zuzanna, Paulina, "
            "Agata, Marta, Jadwiga"
        ),
        surnames=_surnames(
            "Nowak, Kowalski/Kowalska, Wiśniewski/Wiśniewska, Wójcik, Kowalczyk, "
            "Kamiński/Kamińska, Lewandowski/Lewandowska, Zieliński/Zielińska, "
            "Szymański/Szymańska, Woźniak, Dąbrowski/Dąbrowska, Kozłowski/Kozłowska, "
            "Jankowski/Jankowska, Mazur, Kwiatkowski/Kwiatkowska, Krawczyk, "
            "Piotrowski/Piotrowska, Grabowski/Grabowska, Pawłowski/Pawłowska, "
            "Michalski/Michalska, Wróbel, Zając, Król, Górski/Górska"
        ),
        ethnicity=(("C", 88.0), ("A", 2.0), ("Z", 10.0)),
        towns={
            "Peterborough": 5.0,
            "Slough": 4.0,
            "Southampton": 2.5,
            "Swindon": 2.5,
            "Ipswich": 2.0,
            "Lincoln": 2.5,
            "London": 1.2,
        },
    ),
    Origin(
        key="lithuanian",
        weight=0.4,
        male=_names(
            "Jonas, Tomas, Mantas, Darius, Andrius, Marius, Vytautas, Paulius, Rokas, Lukas, "
            "Kęstutis, Gintaras"
        ),
        female=_names(
            "Rūta, Jūratė, Aistė, Greta, Ieva, Eglė, Laura, Inga, Vaida, Asta, Kristina, Jolanta"
        ),
        surnames=_surnames(
            "Kazlauskas/Kazlauskienė, Jankauskas/Jankauskienė, Petrauskas/Petrauskienė, "
            "Stankevičius/Stankevičienė, Vasiliauskas/Vasiliauskienė, Žukauskas/Žukauskienė, "
            "Butkus/Butkienė, Paulauskas/Paulauskienė, Urbonas/Urbonienė, "
            "Kavaliauskas/Kavaliauskienė"
        ),
        ethnicity=(("C", 88.0), ("Z", 12.0)),
        towns={"Peterborough": 6.0, "Lincoln": 4.0, "London": 1.5},
    ),
    Origin(
        key="romanian",
        weight=1.2,
        male=_names(
            "Andrei, Alexandru, Ionuț, Mihai, Constantin, Florin, Gheorghe, Ion, Marius, "
            "Cristian, Adrian, Bogdan, Ștefan, Vasile, Daniel, Gabriel, Nicolae, Sorin, "
            "Cătălin, Răzvan"
        ),
        female=_names(
            "Maria, Elena, Ioana, Andreea, Mihaela, Ana, Cristina, Gabriela, Alexandra, "
            "Adriana, Daniela, Florentina, Nicoleta, Roxana, Simona, Georgiana, Larisa, Bianca, "
            "Oana, Raluca"
        ),
        surnames=_surnames(
            "Popescu, Ionescu, Popa, Pop, Radu, Dumitru, Stan, Stoica, Gheorghe, Matei, "
            "Ciobanu, Rusu, Munteanu, Constantin, Moldovan, Mocanu, Dinu, Lungu, Marin, Tudor, "
            "Ene, Dobre, Barbu, Nistor, Sârbu"
        ),
        ethnicity=(("C", 85.0), ("G", 2.0), ("Z", 13.0)),
        towns={
            "London": 2.0,
            "Harrow": 4.0,
            "Enfield": 3.0,
            "Romford": 3.0,
            "Luton": 2.0,
            "Peterborough": 2.0,
        },
    ),
    Origin(
        key="portuguese",
        weight=0.7,
        male=_names(
            "João, José, António, Manuel, Francisco, Pedro, Rui, Luís, Paulo, Carlos, Miguel, "
            "Tiago, Nuno, Ricardo, Diogo, Gonçalo, Bruno, Hugo, Fernando, Joaquim"
        ),
        female=_names(
            "Maria, Ana, Joana, Inês, Sofia, Beatriz, Mariana, Catarina, Rita, Sara, Filipa, "
            "Teresa, Fernanda, Conceição, Patrícia, Cláudia, Susana, Rosa, Helena, Leonor"
        ),
        surnames=_surnames(
            "Silva, Santos, Ferreira, Pereira, Oliveira, Costa, Rodrigues, Martins, Jesus, "
            "Sousa, Fernandes, Gonçalves, Gomes, Lopes, Marques, Alves, Almeida, Ribeiro, "
            "Pinto, Carvalho, da Silva, dos Santos, de Sousa, Teixeira, Moreira"
        ),
        ethnicity=(("C", 85.0), ("G", 3.0), ("Z", 12.0)),
        towns={"London": 2.5, "Swindon": 3.0, "Reading": 2.0, "Peterborough": 2.0},
    ),
    Origin(
        key="italian",
        weight=0.7,
        male=_names(
            "Giuseppe, Giovanni, Antonio, Mario, Luigi, Francesco, Salvatore, Marco, "
            "Alessandro, Luca, Matteo, Lorenzo, Andrea, Paolo, Roberto, Stefano, Vincenzo, "
            "Domenico"
        ),
        female=_names(
            "Maria, Anna, Giuseppina, Rosa, Angela, Giovanna, Teresa, Lucia, Francesca, "
            "Giulia, Chiara, Sara, Martina, Valentina, Alessandra, Federica, Elena, Carmela"
        ),
        surnames=_surnames(
            "Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Marino, Greco, "
            "Bruno, Gallo, Conti, De Luca, Mancini, Costa, Giordano, Rizzo, Lombardi, Moretti, "
            "D'Angelo, Di Marco, Lo Russo"
        ),
        ethnicity=(("C", 86.0), ("A", 2.0), ("Z", 12.0)),
        towns={"London": 2.0, "Peterborough": 2.0},
    ),
    Origin(
        key="greek_cypriot",
        weight=0.4,
        male=_names(
            "Georgios, Dimitrios, Konstantinos, Ioannis, Nikolaos, Christos, Panagiotis, "
            "Andreas, Michalis, Costas, Stavros, Yiannis"
        ),
        female=_names(
            "Maria, Eleni, Aikaterini, Vasiliki, Sofia, Anastasia, Despina, Georgia, Christina, "
            "Androulla, Panayiota, Eirini"
        ),
        surnames=_surnames(
            "Papadopoulos/Papadopoulou, Georgiou, Christodoulou, Constantinou, Ioannou, "
            "Demetriou, Nicolaou, Charalambous, Papageorgiou, Antoniou, Michael, "
            "Economou, Panayiotou, Kyriacou, Stylianou"
        ),
        ethnicity=(("C", 85.0), ("Z", 15.0)),
        towns={"London": 3.0, "Enfield": 8.0},
    ),
    Origin(
        key="nigerian",
        weight=1.3,
        male=_names(
            "Chukwuemeka, Oluwaseun, Babatunde, Adebayo, Emeka, Chidi, Obinna, Olumide, Tunde, "
            "Femi, Segun, Ikenna, Uchenna, Kayode, Ifeanyi, Damilola, Tobi, Ayodele, Nnamdi, "
            "Gbenga"
        ),
        female=_names(
            "Chiamaka, Ngozi, Adaeze, Folake, Funmilayo, Oluwakemi, Yetunde, Bukola, Chioma, "
            "Nneka, Ifeoma, Temitope, Titilayo, Abimbola, Omolara, Adaobi, Blessing, Precious, "
            "Ebere, Uju"
        ),
        surnames=_surnames(
            "Okafor, Okonkwo, Adeyemi, Oluwole, Adebayo, Balogun, Eze, Nwosu, Okeke, Ogunleye, "
            "Afolabi, Obi, Chukwu, Adewale, Oyelaran, Ibekwe, Nwachukwu, Akinola, Olaniyan, "
            "Uzoma, Ogbonna, Ajayi, Bello, Oyelowo"
        ),
        ethnicity=(("N", 84.0), ("E", 3.0), ("P", 3.0), ("Z", 10.0)),
        towns={
            "London": 4.5,
            "Croydon": 4.0,
            "Romford": 3.0,
            "Manchester": 1.5,
            "Milton Keynes": 2.5,
        },
    ),
    Origin(
        key="ghanaian",
        weight=0.6,
        male=_names(
            "Kwame, Kofi, Kwabena, Kwaku, Yaw, Kojo, Kwesi, Nana, Emmanuel, Ebenezer, Samuel, "
            "Isaac, Prince, Godfred, Francis"
        ),
        female=_names(
            "Ama, Akosua, Abena, Adwoa, Afua, Yaa, Efua, Akua, Esi, Adjoa, Comfort, Gifty, "
            "Mercy, Patience, Grace"
        ),
        surnames=_surnames(
            "Mensah, Asante, Owusu, Boateng, Osei, Appiah, Agyeman, Ofori, Darko, Amoah, Addo, "
            "Acheampong, Antwi, Bonsu, Quaye, Tetteh, Annan, Ansah, Frimpong, Adjei"
        ),
        ethnicity=(("N", 84.0), ("P", 4.0), ("Z", 12.0)),
        towns={"London": 4.5, "Croydon": 3.0, "Milton Keynes": 2.0},
    ),
    Origin(
        key="somali",
        weight=0.5,
        male=_names(
            "Mohamed, Abdi, Abdullahi, Ahmed, Hassan, Hussein, Ismail, Omar, Yusuf, Abdirahman, "
            "Abdikarim, Mahad, Guled, Liban, Farah, Said, Osman, Abdirashid, Bashir, Warsame"
        ),
        female=_names(
            "Fadumo, Hodan, Halima, Ayan, Sahra, Hibo, Ifrah, Nimco, Ubah, Deeqa, Hamdi, Idil, "
            "Khadra, Maryan, Muna, Faiza, Safiya, Sagal, Asha, Amina"
        ),
        surnames=_surnames(
            "Mohamed, Ali, Hassan, Abdi, Farah, Warsame, Jama, Omar, Yusuf, Hussein, Ahmed, "
            "Ismail, Aden, Nur, Osman, Dahir, Egal, Elmi, Gure, Hirsi, Mohamud, Roble, Samatar, "
            "Shire, Duale"
        ),
        ethnicity=(("N", 80.0), ("P", 5.0), ("S", 3.0), ("Z", 12.0)),
        towns={
            "London": 3.0,
            "Bristol": 6.0,
            "Cardiff": 6.0,
            "Sheffield": 4.0,
            "Leicester": 4.0,
            "Birmingham": 2.0,
            "Manchester": 2.0,
        },
    ),
    Origin(
        key="caribbean",
        weight=1.5,
        male=_names(
            "Delroy, Winston, Leroy, Clive, Everton, Errol, Desmond, Lloyd, Neville, Marcus, "
            "Courtney, Devon, Andre, Jermaine, Tyrone, Dwayne, Jamal, Kemar, Aston, Junior"
        ),
        female=_names(
            "Marcia, Paulette, Beverley, Sonia, Hyacinth, Claudette, Pearline, Yvonne, Merle, "
            "Althea, Carlene, Shanice, Kezia, Tamika, Nadine, Simone, Jade, Tanisha, Monique, "
            "Kerry-Ann"
        ),
        surnames=_surnames(
            "Campbell, Brown, Williams, Clarke, Robinson, Thompson, Francis, Grant, Reid, "
            "Bailey, Henry, Lewis, Samuels, Johnson, Morgan, Gordon, Wilson, Forbes, McKenzie, "
            "Blake, Christie, Edwards, Bennett, Dixon, Barrett"
        ),
        ethnicity=(("M", 72.0), ("D", 8.0), ("P", 4.0), ("A", 4.0), ("Z", 12.0)),
        towns={
            "London": 4.0,
            "Croydon": 4.0,
            "Birmingham": 3.5,
            "Manchester": 2.0,
            "Bristol": 2.5,
            "Leeds": 1.5,
            "Nottingham": 2.5,
            "Wolverhampton": 2.5,
            "Luton": 2.0,
        },
    ),
    Origin(
        key="arabic",
        weight=1.0,
        male=_names(
            "Ahmed, Mohammed, Omar, Khalid, Youssef, Ali, Hassan, Ibrahim, Tariq, Mahmoud, "
            "Karim, Sami, Faisal, Nabil, Walid, Ziad, Hamza, Bilal, Adel, Mustafa"
        ),
        female=_names(
            "Fatima, Aisha, Layla, Mariam, Noor, Huda, Rania, Salma, Yasmin, Leila, Amal, Hanan, "
            "Dalia, Samira, Nadia, Rasha, Zeinab, Lina, Reem, Dina"
        ),
        surnames=_surnames(
            "Al-Sayed, Al-Hashimi, Haddad, Khalil, Hassan, Ibrahim, Mansour, Nasser, Saleh, "
            "Abdullah, Al-Amin, El-Masri, Farouk, Said, Hamdan, Aziz, Othman, Yousef, "
            "Al-Rashid, Qasim, Darwish, Barakat, Jaber, Shalaby, El-Sharif"
        ),
        ethnicity=(("S", 70.0), ("L", 5.0), ("G", 3.0), ("Z", 22.0)),
        towns={
            "London": 3.0,
            "Manchester": 2.0,
            "Birmingham": 1.5,
            "Cardiff": 2.0,
            "Sheffield": 2.0,
            "Liverpool": 1.5,
        },
    ),
    Origin(
        key="turkish",
        weight=0.6,
        male=_names(
            "Mehmet, Mustafa, Ahmet, Ali, Hüseyin, Hasan, İbrahim, İsmail, Osman, Yusuf, "
            "Murat, Emre, Burak, Can, Kemal, Serkan, Cem, Onur, Erdem, Ömer"
        ),
        female=_names(
            "Fatma, Ayşe, Emine, Hatice, Zeynep, Elif, Meryem, Şerife, Sultan, Hülya, Esra, "
            "Büşra, Merve, Gül, Özlem, Derya, Ebru, Selin, Aylin, Nur"
        ),
        surnames=_surnames(
            "Y\u0131lmaz, Kaya, Demir, Şahin, Çelik, Y\u0131ld\u0131z, Y\u0131ld\u0131r\u0131m, "
            "Öztürk, Ayd\u0131n, Özdemir, Arslan, Doğan, K\u0131l\u0131ç, Aslan, Çetin, Kara, "
            "Koç, Kurt, Özkan, Şimşek, Polat, Avc\u0131, Güneş"
        ),
        ethnicity=(("C", 45.0), ("S", 40.0), ("Z", 15.0)),
        towns={"London": 3.5, "Enfield": 6.0},
    ),
    Origin(
        key="kurdish",
        weight=0.2,
        male=_names("Aram, Dilshad, Hawre, Karwan, Rebin, Shvan, Zana, Azad, Baran, Dara"),
        female=_names("Avin, Berivan, Dilan, Hana, Nergiz, Rojin, Shilan, Lana, Gulistan, Zhila"),
        surnames=_surnames(
            "Rashid, Karim, Aziz, Hamasalih, Mohammadi, Rasul, Qadir, Salih, Tahir, Omer"
        ),
        ethnicity=(("S", 70.0), ("C", 10.0), ("Z", 20.0)),
        towns={"London": 2.0, "Enfield": 3.0, "Sheffield": 2.0, "Leeds": 1.5},
    ),
    Origin(
        key="iranian",
        weight=0.3,
        male=_names("Reza, Ali, Hossein, Mehdi, Amir, Babak, Dariush, Farhad, Kian, Arash"),
        female=_names("Maryam, Fatemeh, Zahra, Shirin, Nasrin, Parisa, Leila, Sara, Mahsa, Roya"),
        surnames=_surnames(
            "Hosseini, Mohammadi, Rezaei, Ahmadi, Karimi, Jafari, Moradi, Tehrani, Rahimi, "
            "Sadeghi, Kazemi, Ghorbani"
        ),
        ethnicity=(("S", 55.0), ("L", 25.0), ("Z", 20.0)),
        towns={"London": 3.0, "Manchester": 1.5},
    ),
)

ORIGIN_KEYS: tuple[str, ...] = tuple(o.key for o in ORIGINS)

RELATIONS_FEMALE = ("daughter", "wife", "mother", "sister", "partner", "granddaughter", "niece")
RELATIONS_MALE = ("son", "husband", "father", "brother", "partner", "grandson", "nephew")
