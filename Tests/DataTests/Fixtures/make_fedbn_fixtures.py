# Writes fedbn/: small stand-ins for FedBN's prepared Office-Caltech-10 and DomainNet
# lists (ROOT/office_caltech_10/SITE_{train,test}.pkl, ROOT/DomainNet/SITE_{train,test}.pkl),
# pickled the ways NumPy and Python write them, plus broken lists for the error tests,
# and expected.json: the (path, label) pairs FedBN's own loader (its label_dict) gives.
# Run from this folder: python3 make_fedbn_fixtures.py  (NumPy 2.4, Python 3.11)
import json, os, pickle
import numpy as np

office = {'back_pack': 0, 'bike': 1, 'calculator': 2, 'headphones': 3, 'keyboard': 4,
          'laptop_computer': 5, 'monitor': 6, 'mouse': 7, 'mug': 8, 'projector': 9}
domainnet = {'bird': 0, 'feather': 1, 'headphones': 2, 'ice_cream': 3, 'teapot': 4,
             'tiger': 5, 'whale': 6, 'windmill': 7, 'wine_glass': 8, 'zebra': 9}

def dump(path, obj, protocol):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol)

def rows(site, folder, names):
    return [f'{folder}/{site}/{n}/img_{k:04d}.jpg' for k, n in enumerate(names)], list(names)

lists = {
    # (file, paths, labels, how it is pickled)
    'office_caltech_10/amazon_train.pkl': rows('amazon', 'office_caltech_10', ['back_pack', 'mug', 'projector', 'mug']) + ('unicode-tuple-4',),
    'office_caltech_10/amazon_test.pkl': rows('amazon', 'office_caltech_10', ['bike', 'laptop_computer']) + ('unicode-list-2',),
    'office_caltech_10/webcam_train.pkl': rows('webcam', 'office_caltech_10', ['monitor', 'mouse', 'keyboard']) + ('str-lists-3',),
    'office_caltech_10/webcam_test.pkl': rows('webcam', 'office_caltech_10', ['calculator']) + ('bytes-tuple-5',),
    'DomainNet/clipart_train.pkl': rows('clipart', 'DomainNet', ['zebra', 'bird', 'wine_glass']) + ('unicode-tuple-4',),
    'DomainNet/clipart_test.pkl': rows('clipart', 'DomainNet', ['ice_cream']) + ('object-tuple-4',),
}
expected = {}
for name, (paths, labels, how) in lists.items():
    kind, container, protocol = how.split('-')
    if kind == 'unicode':
        a, b = np.array(paths), np.array(labels)
    elif kind == 'bytes':
        a, b = np.array([p.encode() for p in paths]), np.array([l.encode() for l in labels])
    elif kind == 'object':
        a, b = np.array(paths, dtype=object), np.array(labels, dtype=object)
    else:
        a, b = list(paths), list(labels)
    dump('fedbn/' + name, (a, b) if container == 'tuple' else [a, b], int(protocol))
    # FedBN: self.paths, self.text_labels = np.load(pkl, allow_pickle=True)
    p, t = np.load('fedbn/' + name, allow_pickle=True)
    order = office if name.startswith('office') else domainnet
    t = [x.decode() if isinstance(x, bytes) else str(x) for x in t]
    p = [x.decode() if isinstance(x, bytes) else str(x) for x in p]
    expected[name] = {'paths': p, 'labels': [order[x] for x in t]}

bad = {
    'escape': (['office_caltech_10/amazon/mug/../../../../etc/passwd'], ['mug']),
    'absolute': (['/etc/passwd'], ['mug']),
    'unknown': (['office_caltech_10/amazon/mug/img_0000.jpg'], ['sofa']),
    'mismatch': (['office_caltech_10/amazon/mug/img_0000.jpg', 'office_caltech_10/amazon/mug/img_0001.jpg'], ['mug']),
}
for name, (paths, labels) in bad.items():
    dump(f'fedbn-bad/{name}.pkl', (np.array(paths), np.array(labels)), 4)
with open('fedbn/expected.json', 'w') as f:
    json.dump(expected, f, indent=1, sort_keys=True)
